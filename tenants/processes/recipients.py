"""Who is told: the policy's rule (account manager or team), then its fallback, then the tenant's admins,
so a notification always reaches a person."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.tenants.customers.models import Customer
from backoffice.tenants.notifications.preferences import channels_for
from backoffice.tenants.notifications.queries import preferences_by_user
from backoffice.tenants.users.models import TenantRole, TenantUser


async def _active(session: AsyncSession, ids) -> list[TenantUser]:
    ids = [i for i in ids if i]
    if not ids:
        return []
    query = select(TenantUser).where(TenantUser.id.in_(ids), TenantUser.active.is_(True)).order_by(TenantUser.email)
    return list((await session.execute(query)).scalars())


async def responsible_people(session: AsyncSession, customer: Customer | None, notify) -> list[TenantUser]:
    manager = [customer.account_manager_id] if customer else []
    team = list(notify.team_user_ids)
    order = [manager, team] if notify.primary == "account_manager" else [team, manager]
    for ids in [*order, [notify.fallback_user_id]]:
        people = await _active(session, ids)
        if people:
            return people
    admins = select(TenantUser).where(TenantUser.role == TenantRole.ADMIN, TenantUser.active.is_(True))
    return list((await session.execute(admins.order_by(TenantUser.email))).scalars())


class Choices:
    """The people's own notification preferences (tenants/notifications/preferences.py), for one process
    batch: read in one statement the first time a step tells someone, whoever the batch's recipients are."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._by_user: dict | None = None

    async def channels(self, person: TenantUser, kind: str, policy_channels: list[str]) -> list[str]:
        if self._by_user is None:
            self._by_user = await preferences_by_user(self.session)
        return channels_for(kind, policy_channels, self._by_user.get(person.id))
