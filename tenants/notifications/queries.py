"""Reads of the notifications domain: what the live stream, the preferences page, the process step and the
daily digest need, each in one statement. Through the tenant door (a tenant session) unless it says
otherwise: another tenant's rows do not exist here."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.tenants.effects.models import OutboundMessage
from backoffice.tenants.notifications.models import Notification, NotificationPreference
from backoffice.tenants.policies.models import PolicyVersion
from backoffice.tenants.policies.schemas import PolicyConfig
from backoffice.tenants.registry.models import Tenant, TenantStatus
from backoffice.tenants.users.models import TenantUser


async def active_person(session: AsyncSession, user_id: uuid.UUID) -> TenantUser | None:
    """The tenant's active user with this id (an inactive, unknown or foreign one is None)."""
    return (await session.execute(
        select(TenantUser).where(TenantUser.id == user_id, TenantUser.active.is_(True)))).scalar_one_or_none()


async def unread_since(session: AsyncSession, recipient_id: uuid.UUID, since: datetime) -> int:
    """How many of the person's unread notifications arrived after ``since`` (a reconnecting stream)."""
    return (await session.execute(select(func.count()).select_from(Notification).where(
        Notification.recipient_id == recipient_id, Notification.read_at.is_(None),
        Notification.created_at > since))).scalar_one()


async def preference_of(session: AsyncSession, user_id: uuid.UUID) -> NotificationPreference | None:
    return (await session.execute(
        select(NotificationPreference).where(NotificationPreference.user_id == user_id))).scalar_one_or_none()


async def preferences_by_user(session: AsyncSession) -> dict[uuid.UUID, NotificationPreference]:
    """Every person's preferences of the session's tenant, in one statement: a process batch reads them
    once, whoever its recipients turn out to be (a row exists only for a person who saved a choice)."""
    rows = (await session.execute(select(NotificationPreference))).scalars()
    return {row.user_id: row for row in rows}


async def digest_subscribers(session: AsyncSession) -> list[tuple[NotificationPreference, TenantUser, Tenant]]:
    """System session: every active person of an active tenant who asked for the daily digest."""
    query = (select(NotificationPreference, TenantUser, Tenant)
             .join(TenantUser, (TenantUser.tenant_id == NotificationPreference.tenant_id)
                   & (TenantUser.id == NotificationPreference.user_id))
             .join(Tenant, Tenant.id == NotificationPreference.tenant_id)
             .where(NotificationPreference.digest.is_(True), TenantUser.active.is_(True),
                    Tenant.status == TenantStatus.ACTIVE)
             .order_by(NotificationPreference.tenant_id, TenantUser.email))
    return [tuple(row) for row in (await session.execute(query)).all()]


async def notifications_between(session: AsyncSession, pairs: list[tuple[uuid.UUID, uuid.UUID]], start: datetime,
                                end: datetime) -> list[Notification]:
    """System session: the notifications of these (tenant, recipient) pairs created in [start, end)."""
    if not pairs:
        return []
    tenants = {tenant_id for tenant_id, _ in pairs}
    people = {user_id for _, user_id in pairs}
    query = (select(Notification).where(Notification.tenant_id.in_(tenants), Notification.recipient_id.in_(people),
                                        Notification.created_at >= start, Notification.created_at < end)
             .order_by(Notification.created_at, Notification.id))
    wanted = set(pairs)
    return [n for n in (await session.execute(query)).scalars() if (n.tenant_id, n.recipient_id) in wanted]


def notifications_query(*, unread: bool | None = None, recipient_id: uuid.UUID | None = None,
                        customer_id: uuid.UUID | None = None) -> Select:
    """Notifications read or unread, of a recipient, about a customer (each filter only when given), for the
    tenant's API to page through."""
    query = select(Notification)
    if unread is not None:
        query = query.where(Notification.read_at.is_(None) if unread else Notification.read_at.is_not(None))
    if recipient_id is not None:
        query = query.where(Notification.recipient_id == recipient_id)
    if customer_id is not None:
        query = query.where(Notification.customer_id == customer_id)
    return query


async def sent_digests(session: AsyncSession, keys: list[tuple[uuid.UUID, str]]) -> set[tuple[uuid.UUID, str]]:
    """System session: which of these (tenant, digest effect key) e-mails exist already."""
    if not keys:
        return set()
    query = select(OutboundMessage.tenant_id, OutboundMessage.effect_key).where(
        OutboundMessage.tenant_id.in_({tenant_id for tenant_id, _ in keys}),
        OutboundMessage.effect_key.in_({key for _, key in keys}))
    return {tuple(row) for row in (await session.execute(query)).all()} & set(keys)


async def wording_by_tenant(session: AsyncSession, tenant_ids: set[uuid.UUID]) -> dict[uuid.UUID, dict]:
    """System session: each of these tenants' template overrides (its latest policy; none saved: no overrides),
    in one statement, keyed by tenant so one tenant's words never reach another's readers."""
    if not tenant_ids:
        return {}
    latest = (select(PolicyVersion.tenant_id, func.max(PolicyVersion.version).label("version"))
              .where(PolicyVersion.tenant_id.in_(tenant_ids)).group_by(PolicyVersion.tenant_id).subquery())
    query = select(PolicyVersion).join(latest, (PolicyVersion.tenant_id == latest.c.tenant_id)
                                       & (PolicyVersion.version == latest.c.version))
    found = {row.tenant_id: PolicyConfig.model_validate(row.config).templates
             for row in (await session.execute(query)).scalars()}
    return {tenant_id: found.get(tenant_id, {}) for tenant_id in tenant_ids}
