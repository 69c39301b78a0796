"""A front-office person's inbox: their notifications, newest first, and marking them read."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform import clock
from backoffice.platform.db.session import NotFound, get_owned
from backoffice.tenants.notifications.live import announce_read
from backoffice.tenants.notifications.models import Notification


async def inbox(session: AsyncSession, recipient_id: uuid.UUID, *, unread_only: bool = False,
                limit: int = 100) -> list[Notification]:
    query = select(Notification).where(Notification.recipient_id == recipient_id)
    if unread_only:
        query = query.where(Notification.read_at.is_(None))
    query = query.order_by(Notification.created_at.desc(), Notification.id.desc()).limit(limit)
    return list((await session.execute(query)).scalars())


async def unread_count(session: AsyncSession, recipient_id: uuid.UUID) -> int:
    query = select(func.count()).select_from(Notification).where(
        Notification.recipient_id == recipient_id, Notification.read_at.is_(None))
    return (await session.execute(query)).scalar_one()


async def get_notification(session: AsyncSession, recipient_id: uuid.UUID, notification_id: uuid.UUID) -> Notification:
    """The recipient's own notification; someone else's (or another tenant's) is NotFound like a missing one."""
    notification = await get_owned(session, Notification, notification_id)
    if notification.recipient_id != recipient_id:
        raise NotFound(Notification, notification_id)
    return notification


async def mark_read(session: AsyncSession, recipient_id: uuid.UUID, notification_id: uuid.UUID) -> Notification:
    return await _read(session, await get_notification(session, recipient_id, notification_id))


async def mark_read_for_tenant(session: AsyncSession, notification_id: uuid.UUID) -> Notification:
    """Any of the tenant's notifications, whoever it was for: the tenant's API keys act for the whole front
    office (another tenant's id is NotFound like a missing one)."""
    return await _read(session, await get_owned(session, Notification, notification_id))


async def _read(session: AsyncSession, notification: Notification) -> Notification:
    if notification.read_at is None:
        notification.read_at = clock.now()
        await session.flush()
        # The person's other open pages (another tab, the API's caller's colleague) recount their badge.
        announce_read(session, notification.tenant_id, notification.recipient_id)
    return notification
