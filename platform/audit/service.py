"""Writing audit entries: inside the same transaction as the change they describe.

Who may be named as the actor depends on the door the session came through. A tenant's own request
(``Database.tenant``) names one of the tenant's principals only (``TENANT_ACTOR_TYPES``), for its own tenant;
staff, the CLI and the platform itself act through ``Database.provider`` or ``Database.system``. On
PostgreSQL the audit log's insert policy holds the same rule for the app role's connections (migration
0011), so SQL that reaches the database from a tenant's request cannot forge a provider actor either.
"""

from __future__ import annotations

import getpass
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform.audit.models import AuditEntry
from backoffice.platform.db.session import PROVIDER_KEY, SYSTEM_KEY, TENANT_KEY, ensure_scope

# The principals of a tenant: its users (password or SSO), its API keys, a visitor of its portal. The same
# list is frozen in the audit log's insert policy (migration 0011); change both together.
TENANT_ACTOR_TYPES = frozenset({"tenant_user", "sso", "api_key", "anonymous"})


class ProviderActorInTenantRequest(PermissionError):
    """A provider actor (staff, CLI, the platform) recorded through a tenant's own request session."""


@dataclass(frozen=True)
class Actor:
    """Who acts: provider staff, a tenant user, an API key, the platform itself, or an operator at the CLI."""

    type: str
    label: str
    id: str | None = None

    @classmethod
    def cli(cls) -> Actor:
        try:
            user = getpass.getuser()
        except OSError:
            user = "unknown"
        return cls(type="cli", label=f"cli:{user}")

    @classmethod
    def system(cls, what: str = "platform") -> Actor:
        return cls(type="system", label=f"system:{what}")


async def record(
    session: AsyncSession,
    *,
    actor: Actor,
    action: str,
    target_type: str,
    target_id: uuid.UUID | str | None,
    tenant_id: uuid.UUID | None,
    reason: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    _check_door(session, actor, tenant_id)
    entry = AuditEntry(
        tenant_id=tenant_id,
        actor_type=actor.type,
        actor_id=actor.id,
        actor_label=actor.label,
        action=action,
        target_type=target_type,
        target_id=str(target_id) if target_id is not None else None,
        reason=reason,
        detail=detail or {},
    )
    session.add(entry)
    await session.flush()
    return entry


def _check_door(session: AsyncSession, actor: Actor, tenant_id: uuid.UUID | None) -> None:
    info = session.info
    if info.get(SYSTEM_KEY) or TENANT_KEY not in info:
        return  # the system door: provider-wide, any actor; no door at all: the database refuses
    ensure_scope(session, tenant_id)  # a tenant's entries only, in a tenant-bound session
    if not info.get(PROVIDER_KEY) and actor.type not in TENANT_ACTOR_TYPES:
        raise ProviderActorInTenantRequest(
            f"a {actor.type} actor is recorded through Database.provider(), not a tenant's request session")
