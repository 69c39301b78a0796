"""A person's notification preferences on top of the tenant's policy, and the process step honouring
them: read once per batch, per person, without touching another tenant's people."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from backoffice.platform.audit.models import AuditEntry
from backoffice.platform.audit.service import Actor
from backoffice.platform.errors import ValidationFailed
from backoffice.tenants.effects.models import Channel, OutboundMessage
from backoffice.tenants.notifications import queries
from backoffice.tenants.notifications.models import Notification, NotificationPreference
from backoffice.tenants.notifications.preferences import channels_for, choices, save_preferences
from backoffice.tenants.policies.schemas import NOTIFICATION_KINDS
from tests.tenants.processes.conftest import new_customer
from tests.tenants.processes.test_scenarios import cleared, rows

POLICY = {kind: ["portal"] for kind in NOTIFICATION_KINDS}


def test_a_kind_without_a_choice_follows_the_policy_and_chat_stays_the_teams():
    mine = NotificationPreference(channels={"customer.started": ["email"]}, digest=False)
    assert channels_for("customer.started", ["portal", "chat"], mine) == ["email"]
    assert channels_for("dunning.blocked", ["portal", "email", "chat"], mine) == ["portal", "email"]
    assert channels_for("dunning.blocked", ["portal"], None) == ["portal"]
    assert channels_for("customer.started", ["portal"], NotificationPreference(channels={"customer.started": []})) == []


async def test_saving_keeps_only_what_differs_from_the_policy_and_is_audited(database, tenants):
    a = tenants.a
    actor = Actor(type="tenant_user", label="member@alfa.example", id=str(a.member_id))
    wanted = {**{kind: ["portal"] for kind in NOTIFICATION_KINDS}, "customer.started": ["portal", "email"]}
    async with database.tenant(a.id) as session:
        saved = await save_preferences(session, a.id, a.member_id, channels=wanted, policy_channels=POLICY,
                                       digest=True, locale="en", acting=actor)
        assert saved.channels == {"customer.started": ["portal", "email"]}
        shown = {c.kind: c for c in choices(POLICY, saved)}
        assert shown["customer.started"].own and shown["customer.started"].channels == ("portal", "email")
        assert not shown["dunning.blocked"].own and shown["dunning.blocked"].channels == ("portal",)
    async with database.tenant(a.id) as session:
        audit = (await session.execute(select(AuditEntry).where(
            AuditEntry.action == "notification_preferences.saved"))).scalars().all()
        assert len(audit) == 1 and audit[0].detail["after"]["digest"] is True
    # Tenant B's door does not see A's row, even by its person's id.
    async with database.tenant(tenants.b.id) as session:
        assert await queries.preference_of(session, a.member_id) is None
        assert await queries.preferences_by_user(session) == {}


async def test_an_unknown_kind_channel_or_locale_is_refused_naming_the_field(database, tenants):
    a = tenants.a
    actor = Actor(type="tenant_user", label="member@alfa.example", id=str(a.member_id))
    async with database.tenant(a.id) as session:
        with pytest.raises(ValidationFailed) as refused:
            await save_preferences(session, a.id, a.member_id, channels={"customer.started": ["sms"], "x.y": []},
                                   policy_channels=POLICY, digest=False, locale="fr", acting=actor)
    fields = {e.field for e in refused.value.errors}
    assert fields == {"channels.customer.started", "channels.x.y", "locale"}


async def test_the_process_step_tells_each_person_on_their_own_channels(spine):
    """The admin (the customer's account manager) wants new customers by e-mail only; tenant B's admin
    chose the opposite, which changes nothing in tenant A."""
    a, b = spine.tenants.a, spine.tenants.b
    for tenant in (a, b):
        actor = Actor(type="tenant_user", label="admin", id=str(tenant.admin_id))
        wanted = {kind: ["portal"] for kind in NOTIFICATION_KINDS}
        wanted["customer.started"] = ["email"] if tenant is a else ["portal", "email"]
        async with spine.database.tenant(tenant.id) as session:
            await save_preferences(session, tenant.id, tenant.admin_id, channels=wanted, policy_channels=POLICY,
                                   digest=False, locale=None, acting=actor)
    await new_customer(spine.database, a.id, a.admin_id, name="Cliente Pref", tax_id="111.444.777-35",
                       external={"asaas": "cus_pref"})
    await spine.ingest(a.id, cleared("evt_pref", {"external_id": "cus_pref", "source": "asaas"}, charge_id="pay_pref"))
    await spine.settle()
    assert await rows(spine, a.id, Notification) == []
    emails = [m for m in await rows(spine, a.id, OutboundMessage) if m.channel == Channel.EMAIL]
    assert [m.target for m in emails] == ["admin@alfa.example"]
    assert emails[0].payload["kind"] == "customer.started"
