"""Changing a client company's settings after it was created: time zone, locale, API key limits, the
custom host (with its DNS proof), status. Each change is one audited action naming who, what, the value
before and after; the staff console, the staff API and the CLI call these same functions.

Services flush; the caller's transaction commits. Work through ``Database.system()`` (the registry is the
provider's; the app role may change only a tenant's branding).
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import uuid
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform import clock
from backoffice.platform.audit.service import Actor, record
from backoffice.platform.dns import LookupFailed, txt_records
from backoffice.platform.errors import Collector, Conflict, FieldError, ValidationFailed
from backoffice.platform.settings import Settings
from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.registry.service import TenantNotFound, _locale, _timezone

HOST_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
VERIFY_PREFIX = "_backoffice-verify."
VERIFY_VALUE = "bo-verify="
RATE_MAX = 100_000
KEY_DAYS_MAX = 3650


async def get_tenant(session: AsyncSession, tenant_id: uuid.UUID) -> Tenant:
    tenant = await session.get(Tenant, tenant_id)
    if tenant is None:
        raise TenantNotFound(str(tenant_id))
    return tenant


async def _audit(session: AsyncSession, tenant: Tenant, acting: Actor, action: str, *, before: Any, after: Any,
                 reason: str | None = None, **detail: Any) -> None:
    await record(session, actor=acting, action=action, target_type="tenant", target_id=tenant.id,
                 tenant_id=tenant.id, reason=reason, detail={"before": before, "after": after, **detail})


def _days(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        days = int(value)
    except (TypeError, ValueError):
        raise ValueError("expected a whole number of days, or empty for no maximum") from None
    if not 1 <= days <= KEY_DAYS_MAX:
        raise ValueError(f"expected 1-{KEY_DAYS_MAX} days, or empty for no maximum")
    return days


def _rate(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        rate = int(value)
    except (TypeError, ValueError):
        raise ValueError("expected a whole number of requests a minute, or empty for the default") from None
    if not 1 <= rate <= RATE_MAX:
        raise ValueError(f"expected 1-{RATE_MAX} requests a minute, or empty for the default")
    return rate


# Each setting: its validator and the audit action its change is recorded under.
FIELDS = {
    "timezone": (_timezone, "tenant.timezone_changed"),
    "locale": (_locale, "tenant.locale_changed"),
    "api_key_max_days": (_days, "tenant.api_key_max_days_changed"),
    "api_rate_limit_per_minute": (_rate, "tenant.api_rate_limit_changed"),
}


async def change_settings(session: AsyncSession, tenant_id: uuid.UUID, changes: dict[str, Any], *, acting: Actor,
                          reason: str | None = None) -> Tenant:
    """Apply the given settings (keys of ``FIELDS``) all or none; each one that changes is its own audit
    entry with its value before and after. Unknown keys are refused by name."""
    tenant = await get_tenant(session, tenant_id)
    errors = Collector()
    for key in changes:
        if key not in FIELDS:
            errors.add(key, f"not a setting; expected some of {', '.join(FIELDS)}")
    clean = {key: errors.check(key, FIELDS[key][0], value) for key, value in changes.items() if key in FIELDS}
    errors.raise_if_any()
    changed = {key: value for key, value in clean.items() if getattr(tenant, key) != value}
    before = {key: getattr(tenant, key) for key in changed}
    for key, value in changed.items():
        setattr(tenant, key, value)
    if changed:
        await session.flush()
    for key, value in changed.items():
        await _audit(session, tenant, acting, FIELDS[key][1], before=before[key], after=value, reason=reason,
                     setting=key)
    return tenant


# --- custom host ------------------------------------------------------------------------------------------

def platform_hosts(settings: Settings) -> set[str]:
    hosts = {"localhost", "127.0.0.1", settings.host.lower()}
    if settings.base_url:
        hosts.add((urlsplit(settings.base_url).hostname or "").lower())
    return hosts


def normalize_host(value: str, settings: Settings) -> str:
    host = (value or "").strip().lower().rstrip(".")
    if "://" in host or "/" in host or ":" in host:
        raise ValueError("expected a host name alone, like portal.example.com.br (no scheme, port or path)")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        raise ValueError("expected a host name, not an IP address")
    labels = host.split(".")
    if len(host) > 253 or len(labels) < 2 or not all(HOST_LABEL.match(label) for label in labels):
        raise ValueError("expected a host name like portal.example.com.br")
    if labels[-1].isdigit():
        raise ValueError("expected a host name, not an IP address")
    if host in platform_hosts(settings):
        raise ValueError("this is the platform's own address")
    return host


def verification_record(tenant: Tenant) -> dict[str, str] | None:
    """What the client publishes to prove they hold the pending host: the TXT record's name and value."""
    if not tenant.pending_host or not tenant.host_token:
        return None
    return {"name": VERIFY_PREFIX + tenant.pending_host, "type": "TXT", "value": VERIFY_VALUE + tenant.host_token}


async def _host_taken(session: AsyncSession, host: str, tenant_id: uuid.UUID) -> bool:
    query = select(Tenant.id).where(Tenant.custom_host == host, Tenant.id != tenant_id)
    return (await session.execute(query.limit(1))).first() is not None


async def request_custom_host(session: AsyncSession, tenant_id: uuid.UUID, host: str, *, settings: Settings,
                              acting: Actor, reason: str | None = None) -> Tenant:
    """Ask for a custom host: a new token is made and the host waits for its DNS proof. The host in use
    (if any) keeps routing until the new one is verified. Asking again for the same pending host keeps
    its token, so a record already published stays valid."""
    tenant = await get_tenant(session, tenant_id)
    try:
        host = normalize_host(host, settings)
    except ValueError as error:
        raise ValidationFailed(FieldError("custom_host", str(error))) from None
    if await _host_taken(session, host, tenant.id):
        raise Conflict(FieldError("custom_host", "another company uses this host"))
    if host == tenant.custom_host:
        if tenant.pending_host:
            before = tenant.pending_host
            tenant.pending_host = tenant.host_token = None
            await session.flush()
            await _audit(session, tenant, acting, "tenant.custom_host_request_withdrawn", before=before, after=None,
                         reason=reason)
        return tenant
    if host == tenant.pending_host:
        return tenant
    before = tenant.pending_host
    tenant.pending_host, tenant.host_token = host, secrets.token_urlsafe(24)
    await session.flush()
    await _audit(session, tenant, acting, "tenant.custom_host_requested", before=before, after=host, reason=reason,
                 in_use=tenant.custom_host)
    return tenant


class HostNotVerified(ValidationFailed):
    """The TXT record is not (yet) there: ``record`` and ``expected`` say what to publish, ``found`` what the
    DNS holds (None when it could not be asked), so a page can say it in its own language."""

    def __init__(self, error: FieldError, *, record: str, expected: str, found: list[str] | None) -> None:
        super().__init__(error)
        self.record, self.expected, self.found = record, expected, found


async def verify_custom_host(session: AsyncSession, tenant_id: uuid.UUID, *, settings: Settings,
                             acting: Actor) -> Tenant:
    """Look the TXT record up; when it holds the token, the pending host becomes the one routing uses.
    Raises HostNotVerified (naming ``custom_host``) with what was found otherwise, writing nothing."""
    tenant = await get_tenant(session, tenant_id)
    expected = verification_record(tenant)
    if expected is None:
        raise ValidationFailed(FieldError("custom_host", "no host is waiting for verification"))
    try:
        found = await txt_records(expected["name"], settings)
    except LookupFailed as error:
        raise HostNotVerified(FieldError("custom_host", f"{error}; try again in a moment"), record=expected["name"],
                              expected=expected["value"], found=None) from None
    if expected["value"] not in (value.strip() for value in found):
        seen = ", ".join(f'"{value[:80]}"' for value in found[:3]) or "no TXT record"
        raise HostNotVerified(FieldError("custom_host", (
            f"{expected['name']} has {seen}; expected TXT \"{expected['value']}\" (DNS changes can take a "
            "while to show)")), record=expected["name"], expected=expected["value"], found=found)
    host = tenant.pending_host
    if await _host_taken(session, host, tenant.id):
        raise Conflict(FieldError("custom_host", "another company uses this host"))
    before = tenant.custom_host
    tenant.custom_host, tenant.host_verified_at = host, clock.now()
    tenant.pending_host = tenant.host_token = None
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:  # another company verified the same host in between
        raise Conflict(FieldError("custom_host", "another company uses this host")) from None
    await _audit(session, tenant, acting, "tenant.custom_host_verified", before=before, after=host,
                 record=expected["name"])
    return tenant


async def remove_custom_host(session: AsyncSession, tenant_id: uuid.UUID, *, acting: Actor,
                             reason: str | None = None) -> Tenant:
    """Stop serving the portal on a custom host (and drop any pending one): the path address remains."""
    tenant = await get_tenant(session, tenant_id)
    before = {"custom_host": tenant.custom_host, "pending_host": tenant.pending_host}
    if before == {"custom_host": None, "pending_host": None}:
        return tenant
    tenant.custom_host = tenant.pending_host = tenant.host_token = tenant.host_verified_at = None
    await session.flush()
    await _audit(session, tenant, acting, "tenant.custom_host_removed", before=before, after=None, reason=reason)
    return tenant
