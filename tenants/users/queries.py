"""Reads of a tenant's front-office users (through the tenant's session, so that tenant's only)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.tenants.users.models import TenantUser


async def active_user(session: AsyncSession, user_id: uuid.UUID) -> TenantUser | None:
    """The user behind a portal session, if still active (a deactivated one is signed out)."""
    return (await session.execute(select(TenantUser).where(TenantUser.id == user_id, TenantUser.active.is_(True)))
            ).scalar_one_or_none()


async def user_by_email(session: AsyncSession, email: str) -> TenantUser | None:
    """The user with this (normalised) e-mail, active or not; None for a value no account can have (a NUL,
    longer than an address), which PostgreSQL would refuse as a query value."""
    if not email or "\x00" in email or len(email) > 254:
        return None
    return (await session.execute(select(TenantUser).where(TenantUser.email == email))).scalar_one_or_none()


async def user_names(session: AsyncSession) -> dict[uuid.UUID, str]:
    """Every user's name by id (tasks and timeline entries name their people)."""
    return dict((await session.execute(select(TenantUser.id, TenantUser.name))).all())


__all__ = ["active_user", "user_by_email", "user_names"]
