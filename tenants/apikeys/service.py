"""Creating, rolling, revoking and authenticating API keys.

A key is looked up by its hash before the tenant is known, through the system session and by hash
only; everything after that runs in the key's tenant.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform import clock
from backoffice.platform.audit.service import Actor, record
from backoffice.platform.db.retry import again_if_disconnected
from backoffice.platform.db.session import TENANT_KEY, Database, get_owned
from backoffice.platform.errors import Collector, FieldError, ValidationFailed
from backoffice.tenants.apikeys import keys
from backoffice.tenants.apikeys.cache import CachedKey, authenticated, forget_on_commit
from backoffice.tenants.apikeys.models import ApiKey, IdempotencyRecord
from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.registry.service import ensure_active

RESOURCES = (
    "customers", "contracts", "charges", "events", "notifications", "tasks", "timelines", "webhooks", "keys",
)
ACCESS = ("read", "write")
# Read only through the API: the back office starts, pauses and retries routines, not the company's systems.
READ_ONLY = ("routines",)
ALL_SCOPES = tuple(f"{resource}:{access}" for resource in RESOURCES for access in ACCESS) + tuple(
    f"{resource}:read" for resource in READ_ONLY)
DEFAULT_OVERLAP = timedelta(hours=24)
TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class NewKey:
    """A key just created: the secret exists only here and is shown once."""

    key: ApiKey
    secret: str


class RetiredKey(Exception):
    """A key of a mode that is no longer accepted (a ``bo_test_`` key): refused, with the reason."""


RETIRED_TEST_KEY = (
    "Test-mode keys (bo_test_) are retired: there is no separate test data, so they read and wrote live data. "
    "Use a live key (bo_live_) from the company's API keys, and revoke this one."
)


def allows(granted: Sequence[str], needed: str) -> bool:
    """``resource:write`` includes ``resource:read``."""
    resource, _, access = needed.partition(":")
    return needed in granted or (access == "read" and f"{resource}:write" in granted)


def _not_held(scopes: Sequence[str], within: Sequence[str] | None) -> list[str]:
    """The scopes a key acting with ``within`` cannot hand out (None: a person, not a key: no limit)."""
    return [] if within is None else [s for s in scopes if not allows(within, s)]


def _more_than_held(missing: list[str]) -> str:
    return (f"a key cannot grant scopes it does not have: {', '.join(missing)}; ask for a subset of this "
            "key's scopes, or have a company admin create the key in the portal")


def _scopes(value: list[str]) -> list[str]:
    if not isinstance(value, list | tuple) or not value:
        raise ValueError("expected at least one scope such as customers:read")
    unknown = [s for s in value if s not in ALL_SCOPES]
    if unknown:
        raise ValueError(f"unknown scope(s) {', '.join(map(str, unknown))}; expected resource:read|write with "
                         f"resource one of {', '.join(RESOURCES)}, or {', '.join(f'{r}:read' for r in READ_ONLY)}")
    return sorted(set(value))


def _name(value: str) -> str:
    value = (value or "").strip()
    if not 1 <= len(value) <= 100:
        raise ValueError("expected 1-100 characters")
    return value


def _tenant_id(session: AsyncSession) -> uuid.UUID:
    tenant_id = session.info.get(TENANT_KEY)
    if tenant_id is None:
        raise RuntimeError("API keys are managed through a tenant session")
    return tenant_id


DEFAULT_RATE = 600  # requests a minute, when neither the key nor its company says otherwise


async def create_api_key(
    session: AsyncSession,
    *,
    name: str,
    scopes: list[str],
    mode: str = "live",
    expires_days: int | None = None,
    rate_limit_per_minute: int | None = None,
    acting: Actor,
    within: Sequence[str] | None = None,
) -> NewKey:
    """A new key. ``within``: the scopes of the API key asking for it, which the new key may not exceed
    (None when a person creates it: a company admin in the portal, or the CLI)."""
    tenant_id = _tenant_id(session)
    tenant = await session.get(Tenant, tenant_id)
    errors = Collector()
    clean_name = errors.check("name", _name, name)
    clean_scopes = errors.check("scopes", _scopes, scopes)
    if clean_scopes and (missing := _not_held(clean_scopes, within)):
        errors.add("scopes", _more_than_held(missing))
    if mode not in keys.PREFIXES:
        errors.add("mode", "expected live: test-mode keys are no longer issued (there is no separate test data, "
                           "so they reached live data)")
    # The tenant's cap (set by the provider) is also a new key's rate when none is asked for.
    cap = tenant.api_rate_limit_per_minute if tenant else None
    if rate_limit_per_minute is None:
        rate_limit_per_minute = cap or DEFAULT_RATE
    if not 1 <= rate_limit_per_minute <= 100_000:
        errors.add("rate_limit_per_minute", "expected 1-100000")
    elif cap is not None and rate_limit_per_minute > cap:
        errors.add("rate_limit_per_minute", f"this company allows keys of at most {cap} requests a minute")
    maximum = tenant.api_key_max_days if tenant else None
    if expires_days is not None and expires_days < 1:
        errors.add("expires_days", "expected a positive number of days")
    elif maximum is not None and (expires_days is None or expires_days > maximum):
        errors.add("expires_days", f"this company allows keys of at most {maximum} days; give 1-{maximum}")
    errors.raise_if_any()
    now = clock.now()
    new = _new_key(name=clean_name, scopes=clean_scopes, mode=mode, rate=rate_limit_per_minute, acting=acting,
                   expires_at=now + timedelta(days=expires_days) if expires_days else None, now=now)
    session.add(new.key)
    await session.flush()
    await record(session, actor=acting, action="api_key.created", target_type="api_key", target_id=new.key.id,
                 tenant_id=tenant_id, detail={"name": new.key.name, "scopes": new.key.scopes,
                                              "prefix": new.key.display_prefix,
                                              "expires_at": _iso(new.key.expires_at)})
    return new


def _new_key(*, name, scopes, mode, rate, acting: Actor, expires_at, now) -> NewKey:
    secret = keys.generate(mode)
    key = ApiKey(name=name, mode=mode, key_hash=keys.hash_key(secret), display_prefix=keys.display_prefix(secret),
                 scopes=scopes, rate_limit_per_minute=rate, expires_at=expires_at, created_by=acting.label,
                 created_at=now)
    return NewKey(key, secret)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def api_keys_query() -> Select:
    """The session's tenant's keys, for a paginated list (the caller adds the order)."""
    return select(ApiKey)


async def list_api_keys(session: AsyncSession) -> list[ApiKey]:
    return list((await session.execute(api_keys_query().order_by(ApiKey.created_at, ApiKey.id))).scalars())


async def get_api_key(session: AsyncSession, key_id: uuid.UUID) -> ApiKey:
    return await get_owned(session, ApiKey, key_id)


async def revoke_api_key(
    session: AsyncSession, key_id: uuid.UUID, *, acting: Actor, reason: str | None = None
) -> ApiKey:
    key = await get_owned(session, ApiKey, key_id)
    if key.revoked_at is None:
        key.revoked_at = clock.now()
        forget_on_commit(session, key.key_hash)
        await session.flush()
        await record(session, actor=acting, action="api_key.revoked", target_type="api_key", target_id=key.id,
                     tenant_id=key.tenant_id, reason=reason, detail={"prefix": key.display_prefix})
    return key


async def roll_api_key(
    session: AsyncSession, key_id: uuid.UUID, *, overlap: timedelta = DEFAULT_OVERLAP, acting: Actor,
    within: Sequence[str] | None = None,
) -> NewKey:
    """A new key with the same name, scopes and lifetime; the old one keeps working for ``overlap``.

    ``within`` as for ``create_api_key``: rolling hands the rolled key's powers to whoever gets the new
    secret, so a key may only roll keys that have no scope it lacks."""
    old = await get_owned(session, ApiKey, key_id)
    now = clock.now()
    if old.mode not in keys.PREFIXES:
        raise ValidationFailed(FieldError("key_id", "this is a retired test-mode key; create a live key instead"))
    if not usable(old, now):
        raise ValidationFailed(FieldError("key_id", "this key is revoked or expired; create a new key instead"))
    if missing := _not_held(old.scopes, within):
        raise ValidationFailed(FieldError("scopes", _more_than_held(missing)))
    if overlap < timedelta(0) or overlap > timedelta(days=7):
        raise ValidationFailed(FieldError("overlap_hours", "expected 0-168 hours"))
    lifetime = old.expires_at - old.created_at if old.expires_at else None
    new = _new_key(name=old.name, scopes=list(old.scopes), mode=old.mode, rate=old.rate_limit_per_minute,
                   acting=acting, expires_at=now + lifetime if lifetime else None, now=now)
    session.add(new.key)
    await session.flush()
    old.expires_at = min(filter(None, (old.expires_at, now + overlap)))
    forget_on_commit(session, old.key_hash)
    old.replaced_by_id = new.key.id
    await session.flush()
    await record(session, actor=acting, action="api_key.rolled", target_type="api_key", target_id=old.id,
                 tenant_id=old.tenant_id, detail={"new_key_id": str(new.key.id), "old_expires_at": _iso(old.expires_at),
                                                  "prefix": new.key.display_prefix})
    return new


def usable(key: ApiKey, now: datetime) -> bool:
    """Not revoked, not expired, and of a mode still issued (a retired ``test`` key is never usable)."""
    return (key.mode in keys.PREFIXES and key.revoked_at is None
            and (key.expires_at is None or key.expires_at > now))


async def find_by_secret(system_session: AsyncSession, secret: str) -> ApiKey | None:
    """The key with this secret's hash, any tenant (hash only: nothing else is known yet)."""
    if not keys.looks_like_key(secret):
        return None
    row = (await system_session.execute(_key_and_tenant(keys.hash_key(secret)))).first()
    return row.ApiKey if row is not None else None


def _key_and_tenant(digest: str) -> Select:
    """The one lookup of a key by its secret's hash (any tenant), with its tenant."""
    return select(ApiKey, Tenant).join(Tenant, Tenant.id == ApiKey.tenant_id).where(ApiKey.key_hash == digest)


async def authenticate_key(database: Database, secret: str, ip: str | None) -> CachedKey | None:
    """The usable key with this secret, or None; raises TenantSuspended when its company is suspended, and
    RetiredKey for a well-formed key of a retired mode (``bo_test_``), whatever the database holds.

    Served from the process's cache when it authenticated in the last few seconds (see cache.py); the
    last use is written at most once per ``TOUCH_EVERY`` per key and process, never per request.
    """
    if not keys.looks_like_key(secret):
        if keys.retired_mode(secret):
            raise RetiredKey(RETIRED_TEST_KEY)
        return None
    now = clock.now()
    digest = keys.hash_key(secret)
    entry = authenticated.get(digest)
    if entry is None:
        async def lookup():
            # Before the tenant is known: the system session, filtered by the hash and nothing else.
            async with database.system() as session:
                return (await session.execute(_key_and_tenant(digest))).first()

        row = await again_if_disconnected(lookup)
        if row is None or not usable(row.ApiKey, now):
            return None
        key = row.ApiKey
        ensure_active(row.Tenant)
        if key.last_used_at is not None and key.last_used_at >= now - TOUCH_EVERY:
            authenticated.mark_touched(key.id)
        entry = authenticated.put(key_hash=digest, tenant_id=key.tenant_id, key_id=key.id, scopes=tuple(key.scopes),
                                  display_prefix=key.display_prefix, rate_limit=key.rate_limit_per_minute,
                                  expires_at=key.expires_at)
    elif not entry.usable(now):
        authenticated.forget(digest)
        return None
    if authenticated.due_for_touch(entry.key_id, TOUCH_EVERY.total_seconds()):
        async with database.tenant(entry.tenant_id) as session:
            await touch(session, entry.key_id, ip, now)
    return entry


async def touch(session: AsyncSession, key_id: uuid.UUID, ip: str | None, now: datetime) -> None:
    """Record the last use, at most once a minute per key (a conditional update: no write when fresh)."""
    await session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < now - TOUCH_EVERY))
        .values(last_used_at=now, last_used_ip=(ip or "")[:45] or None)
        .execution_options(synchronize_session=False)
    )


# --- idempotency records: a key's Idempotency-Key reservations and the answers kept for replay ---------

def _idempotency_record(key_id: uuid.UUID, idempotency_key: str) -> Select:
    """The key's own record for this Idempotency-Key (in its tenant's session): never another key's."""
    return select(IdempotencyRecord).where(IdempotencyRecord.api_key_id == key_id,
                                           IdempotencyRecord.idempotency_key == idempotency_key)


async def find_idempotency_record(session: AsyncSession, key_id: uuid.UUID, idempotency_key: str, *,
                                  now: datetime) -> IdempotencyRecord | None:
    """The key's record for this Idempotency-Key, if one is alive. The tenant's expired records go first
    (one indexed delete on its next keyed request: no sweeper needed)."""
    await session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.expires_at <= now)
                          .execution_options(synchronize_session=False))
    return (await session.execute(_idempotency_record(key_id, idempotency_key))).scalar_one_or_none()


async def reserve_idempotency_key(session: AsyncSession, key_id: uuid.UUID, idempotency_key: str, *,
                                  request_hash: str, method: str, path: str, now: datetime,
                                  ttl: timedelta) -> IdempotencyRecord:
    """Reserve the Idempotency-Key for this request (no answer yet); a concurrent twin that reserved it
    first makes the flush raise IntegrityError."""
    reserved = IdempotencyRecord(idempotency_key=idempotency_key, api_key_id=key_id, request_hash=request_hash,
                                 method=method, path=path[:500], created_at=now, expires_at=now + ttl,
                                 response_headers={})
    session.add(reserved)
    await session.flush()
    return reserved


async def keep_idempotent_answer(session: AsyncSession, key_id: uuid.UUID, idempotency_key: str, *,
                                 status: int, body: str, headers: dict[str, str]) -> None:
    """Keep the answer of the request that reserved the key, for its retries to replay."""
    kept = (await session.execute(_idempotency_record(key_id, idempotency_key))).scalar_one()
    kept.response_status = status
    kept.response_body = body
    kept.response_headers = headers


async def release_idempotency_key(session: AsyncSession, key_id: uuid.UUID, idempotency_key: str) -> None:
    """Free a reservation whose request kept no answer (a 5xx): the client may retry with the same key."""
    await session.execute(delete(IdempotencyRecord).where(
        IdempotencyRecord.api_key_id == key_id, IdempotencyRecord.idempotency_key == idempotency_key,
        IdempotencyRecord.response_status.is_(None)))
