"""The registry of connector kinds.

A kind is what the platform knows how to talk to (Asaas, Stripe, Focus NFe, Clicksign, SMTP, a chat
webhook, the tenant's own platform); a tenant configures *instances* of kinds (``connectors/models.py``).
Each kind declares:

- ``config_model``: a pydantic model of its per-instance settings. Credentials are typed
  :class:`pydantic.SecretStr`: they are encrypted at rest, redacted by ``describe()`` and never printed
  by ``repr`` (so a log line cannot carry one by accident);
- optionally ``receive``: verify one inbound webhook request and normalise it into canonical events for
  ``tenants/events/intake.ingest`` (an empty list acknowledges a request that carries nothing we use);
- optionally ``channel``: the outbound channel of ``tenants/effects`` its port delivers.

A module defines its kind; the composition root (``web/entry/wiring.py``) registers every built-in one
with :func:`register`, so importing a module registers nothing.
"""

from __future__ import annotations

import ipaddress
import re
import types
import typing
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from backoffice.platform.settings import Settings
from backoffice.tenants.connections import CallFailed


class ConnectorError(CallFailed):
    """Base of the errors a connector raises (a ``CallFailed`` of the domain's ports)."""


class VerificationFailed(ConnectorError):
    """The inbound request is not provably from the provider (bad signature, token, stale timestamp)."""


class MalformedPayload(ConnectorError):
    """The inbound request is authentic (or unverifiable yet) but its body is not what the provider sends."""


class UnknownKind(LookupError):
    pass


HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")


class KindConfig(BaseModel):
    """Base of every kind's configuration: unknown keys are refused, strings stripped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ProviderConfig(KindConfig):
    """Base of a provider API's configuration. Its URLs must be on the kind's documented ``hosts``, or on
    ``host_override``: one more host a provider admin allowed for this instance (an audited action,
    ``connectors/service.set_host_override``; the ``config`` of a create or an update cannot set it)."""

    host_override: str | None = Field(default=None, max_length=253)

    @field_validator("host_override")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host = value.lower().rstrip(".")
        try:
            return str(ipaddress.ip_address(host.strip("[]")))
        except ValueError:
            pass
        if not HOST_NAME.fullmatch(host):
            raise ValueError("expected a host name or address alone, like api.example.com (no scheme, port or path)")
        return host


@dataclass(frozen=True)
class InboundRequest:
    """One webhook request as the provider sent it: header names lower-cased, the raw body untouched
    (signatures are computed over the exact bytes)."""

    headers: dict[str, str]
    body: bytes
    query: dict[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class CheckResult:
    """What a connection test found: whether the provider accepted us, its answer's status (an HTTP status,
    an SMTP reply code) and a message to show. ``ok`` is None when the kind has nothing to call."""

    ok: bool | None
    status: str
    message: str


@dataclass
class Context:
    """What a kind's code gets to work with for one instance: the decrypted, typed configuration and the
    HTTP helper bound to the instance's circuit breaker."""

    tenant_id: uuid.UUID
    instance_id: uuid.UUID
    config: Any
    settings: Settings
    http: Any = None  # connectors.http.Http, bound to (tenant, instance)


class ConnectorKind:
    """Subclass, set the class attributes, implement what the kind does, and :func:`register` it."""

    name: ClassVar[str]
    title: ClassVar[str]
    config_model: ClassVar[type[KindConfig]]
    channel: ClassVar[Any] = None  # tenants.effects.models.Channel delivered by this kind's port, if any
    inbound: ClassVar[bool] = False
    # The provider's documented API hosts: the instance's URLs may name only these (or the admin's
    # ``host_override``). Empty for kinds whose address is the tenant's own (SMTP, chat, its platform).
    hosts: ClassVar[frozenset[str]] = frozenset()
    url_fields: ClassVar[tuple[str, ...]] = ()  # config fields holding a URL the platform sends requests to

    def targets(self, config: Any) -> dict[str, tuple[str, int]]:
        """Every address the instance's configuration makes the platform connect to: field -> (host, port)."""
        found = {}
        for name in self.url_fields:
            value = getattr(config, name, None)
            if value is None:
                continue
            url = urlsplit(value.get_secret_value() if isinstance(value, SecretStr) else str(value))
            found[name] = (url.hostname or "", url.port or (443 if url.scheme == "https" else 80))
        return found

    def allowed_hosts(self, config: Any) -> frozenset[str] | None:
        """The hosts the instance may call (None: any host that passes the address check)."""
        if not self.hosts:
            return None
        override = getattr(config, "host_override", None)
        return self.hosts | {override} if override else self.hosts

    @property
    def source(self) -> str:
        """The canonical events' ``source`` and the key of ``Customer.external_ids`` for this provider."""
        return self.name

    async def check(self, ctx: Context) -> CheckResult:
        """One cheap, documented read that proves the provider is reachable and accepts the credentials
        (``connectors/checks.py``); raises ProviderError (or ConnectorError) when it does not."""
        return CheckResult(None, "-", f"{self.title} only receives webhooks here: there is no call to test")

    async def receive(self, ctx: Context, request: InboundRequest) -> list[dict[str, Any]]:
        """Verify and normalise one inbound request; raise VerificationFailed or MalformedPayload."""
        raise NotImplementedError(f"{self.name} receives no webhooks")


_KINDS: dict[str, ConnectorKind] = {}


def register(*entries: ConnectorKind | type[ConnectorKind]) -> None:
    """Add kinds (instances, or classes with a no-argument constructor): the composition root
    (``web/entry/wiring.py``) names every built-in one."""
    for kind in entries:
        instance = kind() if isinstance(kind, type) else kind
        existing = _KINDS.get(instance.name)
        if existing is not None and type(existing) is not type(instance):
            raise RuntimeError(f"connector kind {instance.name!r} is registered twice")
        _KINDS[instance.name] = instance


def get_kind(name: str) -> ConnectorKind:
    try:
        return _KINDS[name]
    except KeyError:
        raise UnknownKind(f"no connector kind named {name!r}; known: {', '.join(sorted(_KINDS))}") from None


def kinds() -> dict[str, ConnectorKind]:
    return dict(_KINDS)


def _is_secret(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return any(_is_secret(arg) for arg in typing.get_args(annotation))
    return False


def secret_fields(model: type[BaseModel]) -> frozenset[str]:
    """The fields of a config model that hold credentials (typed SecretStr)."""
    return frozenset(name for name, info in model.model_fields.items() if _is_secret(info.annotation))
