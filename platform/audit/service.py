"""Writing audit entries: inside the same transaction as the change they describe."""

from __future__ import annotations

import getpass
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform.audit.models import AuditEntry


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
