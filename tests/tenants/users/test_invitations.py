"""The first tenant admin is invited by e-mail: a user with no password, an e-mail through the outbox
carrying a one-week link to the password page, the link spent on use; audited."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from backoffice.platform import clock
from backoffice.platform.audit.models import AuditEntry
from backoffice.platform.audit.service import Actor
from backoffice.platform.errors import Conflict, ValidationFailed
from backoffice.platform.security.passwords import verify_password
from backoffice.tenants.effects.models import Channel, OutboundMessage
from backoffice.tenants.users.models import TenantRole, TenantUser
from backoffice.tenants.users.resets import PasswordReset, invite_new_user, invite_user, reset_password

STAFF = Actor(type="staff", label="ana@provider.example", id="00000000-0000-0000-0000-000000000001")
LINK = re.compile(r"https://portal\.example/alfa/password/reset/([A-Za-z0-9_-]+)")


async def _invite(database, tenant_id, email="rita@alfa.example"):
    async with database.provider(tenant_id) as session:
        return await invite_new_user(session, email=email, name="Rita Admin", role="tenant_admin",
                                     link_for=lambda token: f"https://portal.example/alfa/password/reset/{token}",
                                     tenant_name="Alfa", acting=STAFF)


async def test_the_invited_admin_sets_a_password_from_the_emailed_link(database, tenants):
    user = await _invite(database, tenants.a.id)
    assert user.role == TenantRole.ADMIN and user.password_hash is None
    async with database.provider(tenants.a.id) as session:
        message = (await session.execute(select(OutboundMessage).where(OutboundMessage.target == "rita@alfa.example"))
                   ).scalar_one()
        reset = (await session.execute(select(PasswordReset).where(PasswordReset.user_id == user.id))).scalar_one()
    assert message.channel == Channel.EMAIL and message.payload["kind"] == "user.invitation"
    assert "convite" in message.payload["subject"] and "7 dias" in message.payload["text"]
    assert timedelta(days=6, hours=23) < reset.expires_at - clock.now() <= timedelta(days=7)
    token = LINK.search(message.payload["text"]).group(1)
    assert reset.token_hash != token  # only the hash is kept

    async with database.tenant(tenants.b.id) as session:  # another company's door does not open it
        with pytest.raises(ValidationFailed):
            await reset_password(session, token=token, password="a-new-long-passphrase")
    async with database.tenant(tenants.a.id) as session:
        await reset_password(session, token=token, password="a-new-long-passphrase")
    async with database.tenant(tenants.a.id) as session:
        stored = await session.get(TenantUser, (tenants.a.id, user.id))
        assert verify_password(stored.password_hash, "a-new-long-passphrase")
        with pytest.raises(ValidationFailed):  # spent
            await reset_password(session, token=token, password="another-long-passphrase")
    async with database.system() as session:
        actions = (await session.execute(select(AuditEntry.action).where(AuditEntry.tenant_id == tenants.a.id,
                                                                          AuditEntry.target_id == str(user.id))
                                         .order_by(AuditEntry.occurred_at))).scalars().all()
    assert actions[:2] == ["user.created", "user.invited"] and "user.password_reset" in actions


async def test_an_existing_email_is_refused_and_nothing_is_sent(database, tenants):
    with pytest.raises(Conflict) as refused:
        await _invite(database, tenants.a.id, email="admin@alfa.example")
    assert refused.value.errors[0].field == "email"
    async with database.provider(tenants.a.id) as session:
        assert (await session.execute(select(OutboundMessage))).first() is None


async def test_a_user_with_a_password_is_not_invited(database, tenants):
    async with database.provider(tenants.a.id) as session:
        admin = await session.get(TenantUser, (tenants.a.id, tenants.a.admin_id))
        with pytest.raises(ValidationFailed):
            await invite_user(session, admin, link_for=str, tenant_name="Alfa", acting=STAFF)
