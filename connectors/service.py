"""Configuring a tenant's connector instances: audited actions, secrets encrypted, health recorded.

Secrets are encrypted field by field (the kind's ``SecretStr`` fields) with ``platform/security/secrets``
before they reach the row, decrypted only into the typed config a kind works with, and shown redacted.
Every address a configuration names (``ConnectorKind.targets``) is checked when saved: a provider kind's
URLs must be on the provider's documented hosts (or the instance's ``host_override``, which only
:func:`set_host_override` changes: callers let provider admins alone reach it), and every host must pass
the outbound address check (``platform/security/outbound``), which runs again at each connection.
Services flush; the caller's transaction commits.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from pydantic import SecretStr, ValidationError
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.connectors.http import Http
from backoffice.connectors.kinds import Context, UnknownKind, get_kind, kinds, secret_fields
from backoffice.connectors.models import ConnectorInstance, Health
from backoffice.platform import clock
from backoffice.platform.audit.service import Actor, record
from backoffice.platform.db.session import get_owned
from backoffice.platform.errors import Conflict, FieldError, ValidationFailed
from backoffice.platform.security import secrets
from backoffice.platform.security.outbound import TargetRefused, check_host
from backoffice.platform.settings import Settings, get_settings

log = logging.getLogger(__name__)
REDACTED = "••••••••"
NAME_MAX = 64


def _config_errors(error: ValidationError) -> ValidationFailed:
    # input values are left out on purpose: they may be credentials.
    return ValidationFailed([
        FieldError("config." + ".".join(str(p) for p in item["loc"]) if item["loc"] else "config",
                   item["msg"].removeprefix("Value error, "))
        for item in error.errors()
    ])


def _kind(name: str):
    try:
        return get_kind(name)
    except UnknownKind as error:
        raise ValidationFailed(FieldError("kind", str(error))) from None


async def _check_targets(kind, model: Any, settings: Settings) -> None:
    """The configuration's addresses: on the provider's hosts (or the override), and public."""
    allowed = kind.allowed_hosts(model)
    errors: list[FieldError] = []
    for field, (host, port) in kind.targets(model).items():
        if allowed is not None and host not in allowed:
            errors.append(FieldError(f"config.{field}", (
                f"{host} is not one of {kind.title}'s hosts ({', '.join(sorted(kind.hosts))}); "
                "a provider admin can allow another host for this connector (host_override)")))
            continue
        try:
            await check_host(host, port, settings)
        except TargetRefused as refused:
            errors.append(FieldError(f"config.{field}", str(refused)))
    if errors:
        raise ValidationFailed(errors)


async def _seal(kind_name: str, values: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Validate plaintext config and return what the row stores (secret fields encrypted)."""
    kind = _kind(kind_name)
    try:
        model = kind.config_model.model_validate(values)
    except ValidationError as error:
        raise _config_errors(error) from None
    await _check_targets(kind, model, settings)
    stored = model.model_dump(mode="json")
    for field in secret_fields(kind.config_model):
        value = getattr(model, field)
        stored[field] = secrets.encrypt(value.get_secret_value(), settings) if value is not None else None
    return stored


def load_config(instance: ConnectorInstance, settings: Settings | None = None):
    """The instance's typed configuration, secrets decrypted (held as SecretStr)."""
    settings = settings or get_settings()
    kind = get_kind(instance.kind)
    values = dict(instance.config)
    for field in secret_fields(kind.config_model):
        if values.get(field) is not None:
            values[field] = secrets.decrypt(values[field], settings)
    return kind.config_model.model_validate(values)


def describe(instance: ConnectorInstance) -> dict[str, Any]:
    """What screens and the API show: the configuration with every secret replaced by a marker."""
    kind = get_kind(instance.kind)
    hidden = secret_fields(kind.config_model)
    config = {key: (REDACTED if key in hidden and value is not None else value) for key, value in instance.config.items()}
    return {
        "id": str(instance.id), "kind": instance.kind, "name": instance.name, "enabled": instance.enabled,
        "config": config, "health": instance.health.value, "last_error": instance.last_error,
        "last_success_at": instance.last_success_at.isoformat() if instance.last_success_at else None,
        "last_error_at": instance.last_error_at.isoformat() if instance.last_error_at else None,
    }


def _name(value: str) -> str:
    value = (value or "").strip()
    if not 1 <= len(value) <= NAME_MAX:
        raise ValidationFailed(FieldError("name", f"expected 1-{NAME_MAX} characters"))
    return value


async def _name_taken(session: AsyncSession, name: str, but: uuid.UUID | None = None) -> bool:
    query = select(ConnectorInstance.id).where(ConnectorInstance.name == name)
    if but is not None:
        query = query.where(ConnectorInstance.id != but)
    return (await session.execute(query.limit(1))).first() is not None


HOST_OVERRIDE = "host_override"


def _no_override_in(config: dict[str, Any] | None) -> None:
    if config and HOST_OVERRIDE in config:
        raise ValidationFailed(FieldError(f"config.{HOST_OVERRIDE}",
                                          "set by a provider admin as host_override, not within config"))


async def create_instance(session: AsyncSession, *, kind: str, name: str, config: dict[str, Any], acting: Actor,
                          enabled: bool = True, settings: Settings | None = None,
                          reason: str | None = None, host_override: str | None = None) -> ConnectorInstance:
    """Configure a new connector for the session's tenant. ``host_override`` (a provider admin's
    decision: the caller checks the role) lets a provider kind use one host outside the provider's own,
    and is audited as its own action."""
    settings = settings or get_settings()
    name = _name(name)
    _no_override_in(config)
    if host_override and not _kind(kind).hosts:
        raise ValidationFailed(FieldError(HOST_OVERRIDE, f"{_kind(kind).title} has no provider host list to extend"))
    stored = await _seal(kind, {**config, HOST_OVERRIDE: host_override} if host_override else config, settings)
    if await _name_taken(session, name):
        raise Conflict(FieldError("name", f"a connector named {name!r} exists already"))
    instance = ConnectorInstance(kind=kind, name=name, enabled=enabled, config=stored, health=Health.UNKNOWN)
    session.add(instance)
    await session.flush()
    await record(session, actor=acting, action="connector.create", target_type="connector",
                 target_id=instance.id, tenant_id=instance.tenant_id, reason=reason,
                 detail={"kind": kind, "name": name, "enabled": enabled, "config": describe(instance)["config"]})
    if host_override:
        await _record_override(session, instance, acting, None, instance.config[HOST_OVERRIDE], reason)
    return instance


async def _record_override(session: AsyncSession, instance: ConnectorInstance, acting: Actor, before: str | None,
                           after: str | None, reason: str | None) -> None:
    await record(session, actor=acting, action="connector.host_override", target_type="connector",
                 target_id=instance.id, tenant_id=instance.tenant_id, reason=reason,
                 detail={"kind": instance.kind, "name": instance.name, "before": before, "after": after,
                         "documented_hosts": sorted(get_kind(instance.kind).hosts)})


async def set_host_override(session: AsyncSession, instance_id: uuid.UUID, host: str | None, *, acting: Actor,
                            settings: Settings | None = None, reason: str | None = None) -> ConnectorInstance:
    """Allow (or, with None, stop allowing) one host outside the provider's documented ones for this
    instance: for a provider's regional endpoint or a proxy the provider admin vouches for. Only provider
    admins may do this (the caller checks the role); the address check still applies to the host."""
    settings = settings or get_settings()
    instance = await get_owned(session, ConnectorInstance, instance_id)
    kind = get_kind(instance.kind)
    if not kind.hosts:
        raise ValidationFailed(FieldError(HOST_OVERRIDE, f"{kind.title} has no provider host list to extend"))
    before = instance.config.get(HOST_OVERRIDE)
    current = _plain(load_config(instance, settings))
    current[HOST_OVERRIDE] = host or None
    try:
        instance.config = await _seal(instance.kind, current, settings)
    except ValidationFailed as failure:
        raise ValidationFailed([FieldError(HOST_OVERRIDE if e.field == f"config.{HOST_OVERRIDE}" else e.field,
                                           e.message) for e in failure.errors]) from None
    after = instance.config.get(HOST_OVERRIDE)
    if after != before:
        await session.flush()
        await _record_override(session, instance, acting, before, after, reason)
    return instance


def _plain(config: Any) -> dict[str, Any]:
    return {key: value.get_secret_value() if isinstance(value, SecretStr) else value
            for key, value in config.model_dump().items()}


async def update_instance(session: AsyncSession, instance_id: uuid.UUID, *, acting: Actor,
                          config: dict[str, Any] | None = None, name: str | None = None,
                          settings: Settings | None = None, reason: str | None = None) -> ConnectorInstance:
    """Change settings. ``config`` is merged into the current one; a secret left out (or None) keeps
    its stored value, so an edit form never needs to echo credentials back."""
    settings = settings or get_settings()
    instance = await get_owned(session, ConnectorInstance, instance_id)
    changed: list[str] = []
    if name is not None and _name(name) != instance.name:
        name = _name(name)
        if await _name_taken(session, name, but=instance.id):
            raise Conflict(FieldError("name", f"a connector named {name!r} exists already"))
        instance.name = name
        changed.append("name")
    _no_override_in(config)
    if config:
        current = load_config(instance, settings)
        hidden = secret_fields(current.__class__)
        merged = _plain(current)
        for key, value in config.items():
            if key in hidden and value is None:
                continue
            merged[key] = value
        instance.config = await _seal(instance.kind, merged, settings)
        changed += sorted(config)
    await session.flush()
    await record(session, actor=acting, action="connector.update", target_type="connector", target_id=instance.id,
                 tenant_id=instance.tenant_id, reason=reason, detail={"changed": changed})
    return instance


async def set_enabled(session: AsyncSession, instance_id: uuid.UUID, enabled: bool, *, acting: Actor,
                      reason: str | None = None) -> ConnectorInstance:
    instance = await get_owned(session, ConnectorInstance, instance_id)
    instance.enabled = enabled
    await session.flush()
    await record(session, actor=acting, action="connector.enable" if enabled else "connector.disable",
                 target_type="connector", target_id=instance.id, tenant_id=instance.tenant_id, reason=reason)
    return instance


async def get_instance(session: AsyncSession, instance_id: uuid.UUID) -> ConnectorInstance:
    """The session tenant's instance; another tenant's id is NotFound like a missing one."""
    return await get_owned(session, ConnectorInstance, instance_id)


def instances_query() -> Select:
    """The session's tenant's connector instances, for a paginated list (the caller adds the order)."""
    return select(ConnectorInstance)


async def list_instances(session: AsyncSession) -> list[ConnectorInstance]:
    query = select(ConnectorInstance).order_by(ConnectorInstance.kind, ConnectorInstance.name)
    return list((await session.execute(query)).scalars())


async def instance_for_channel(session: AsyncSession, channel: Any) -> ConnectorInstance | None:
    """The tenant's enabled instance of a kind delivering ``channel`` (the oldest, when several)."""
    names = [name for name, kind in kinds().items() if kind.channel == channel]
    if not names:
        return None
    query = (select(ConnectorInstance)
             .where(ConnectorInstance.kind.in_(names), ConnectorInstance.enabled.is_(True))
             .order_by(ConnectorInstance.created_at, ConnectorInstance.id))
    return (await session.execute(query.limit(1))).scalar_one_or_none()


def record_success(instance: ConnectorInstance) -> None:
    instance.health = Health.OK
    instance.last_success_at = clock.now()


# A success is written at most this often per instance: under load every batch would otherwise update the
# same row, and the row lock would make concurrent deliveries wait on each other.
SUCCESS_NOTED_EVERY = timedelta(seconds=60)


async def note_outcome(session: AsyncSession, instance: ConnectorInstance, failure: str | None) -> None:
    """Health bookkeeping after a batch of calls that already happened: it must never wait for, deadlock
    with or roll back another batch (a rolled-back delivery batch resends what it sent). The row is updated
    only when it is free (``SKIP LOCKED``: a batch holding it records the same facts), and a success only
    when the row says otherwise or is a minute old."""
    now = clock.now()
    if failure is None and instance.health == Health.OK and instance.last_success_at is not None \
            and now - instance.last_success_at < SUCCESS_NOTED_EVERY:
        return
    free = (select(ConnectorInstance.id).where(ConnectorInstance.id == instance.id)
            .with_for_update(skip_locked=True))
    if (await session.execute(free)).first() is None:
        return
    if failure is None:
        record_success(instance)
    else:
        record_failure(instance, failure)
    await session.flush()


def record_failure(instance: ConnectorInstance, error: str | BaseException) -> None:
    """Keep why the last exchange failed (the messages we build never carry credentials)."""
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    instance.health = Health.FAILING
    instance.last_error = text[:2000]
    instance.last_error_at = clock.now()


def open_context(instance: ConnectorInstance, settings: Settings | None = None, **http_options: Any):
    """Everything a kind needs to act for one instance: typed config and the breaker-bound HTTP helper."""

    settings = settings or get_settings()
    config = load_config(instance, settings)
    http_options.setdefault("hosts", get_kind(instance.kind).allowed_hosts(config))
    http = Http.for_instance(settings, instance.tenant_id, instance.id, kind=instance.kind, **http_options)
    return Context(tenant_id=instance.tenant_id, instance_id=instance.id, config=config, settings=settings, http=http)


def _reseal_config(row: Mapping[str, Any], one: Callable[[str], str]) -> dict[str, Any]:
    try:
        fields = secret_fields(get_kind(row["kind"]).config_model)
    except UnknownKind:  # a kind no longer shipped: its Fernet tokens are still recognisable by their prefix
        fields = {name for name, value in row["config"].items() if isinstance(value, str) and value.startswith("gAAAAA")}
    config = dict(row["config"])
    for name in fields:
        if config.get(name) is not None:
            config[name] = one(config[name])
    return config


# The secret fields of every instance's configuration, for ``secrets.rotate_all``.
SECRET_COLUMN = secrets.SecretColumn("connector configs", ConnectorInstance.__table__, "config", _reseal_config)
