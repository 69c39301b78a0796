"""The daily digest: one e-mail per opted-in person and day, with that day's notifications, in their
language; a second run the same day sends nothing; nobody else's notifications, nobody who did not ask."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from backoffice.platform.audit.service import Actor
from backoffice.platform.outbox.models import OutboxEntry
from backoffice.tenants.effects.models import OutboundMessage
from backoffice.tenants.notifications import queries as digest_queries
from backoffice.tenants.notifications.digest import effect_key, send_daily_digests
from backoffice.tenants.notifications.models import Notification
from backoffice.tenants.notifications.preferences import save_preferences
from backoffice.tenants.policies.models import PolicyVersion
from backoffice.tenants.policies.schemas import NOTIFICATION_KINDS, PolicyConfig
from tests.tenants.notifications.test_reading import _stored

POLICY = {kind: ["portal"] for kind in NOTIFICATION_KINDS}
# 10:00 in São Paulo on 2026-11-03: the digest of 2026-11-02 is due.
MORNING = datetime(2026, 11, 3, 13, 0, tzinfo=UTC)
YESTERDAY_NOON = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)


async def _opt_in(database, tenant, user_id, locale):
    actor = Actor(type="tenant_user", label="someone", id=str(user_id))
    async with database.tenant(tenant.id) as session:
        await save_preferences(session, tenant.id, user_id, channels=POLICY, policy_channels=POLICY, digest=True,
                               locale=locale, acting=actor)


async def _notification(database, tenant_id, recipient_id, title, at):
    async with database.tenant(tenant_id) as session:
        session.add(Notification(effect_key=f"test:{uuid.uuid4()}", recipient_id=recipient_id, kind="customer.started",
                                 title=title, body="b", detail={}, created_at=at))


async def _digests(database, tenant_id):
    async with database.tenant(tenant_id) as session:
        return list((await session.execute(
            select(OutboundMessage).where(OutboundMessage.effect_key.like("digest:%")))).scalars())


async def test_each_opted_in_person_gets_one_digest_of_yesterday_in_their_language(database, tenants):
    a, b = tenants.a, tenants.b
    await _opt_in(database, a, a.admin_id, "en")
    await _opt_in(database, b, b.admin_id, None)  # no choice: the tenant's language (pt-BR)
    await _notification(database, a.id, a.admin_id, "New customer: Casa do Pão", YESTERDAY_NOON)
    await _notification(database, a.id, a.admin_id, "Customer blocked: Maria", YESTERDAY_NOON + timedelta(hours=2))
    await _notification(database, a.id, a.admin_id, "Two days ago", YESTERDAY_NOON - timedelta(days=1))
    await _notification(database, a.id, a.admin_id, "This morning", MORNING - timedelta(hours=1))
    await _notification(database, a.id, a.member_id, "Member's, who did not ask", YESTERDAY_NOON)
    await _notification(database, b.id, b.admin_id, "Cliente novo: João", YESTERDAY_NOON)

    assert await send_daily_digests(database, now=MORNING - timedelta(hours=4)) == 0  # 06:00 local: not yet
    assert await send_daily_digests(database, now=MORNING) == 2
    assert await send_daily_digests(database, now=MORNING + timedelta(hours=3)) == 0  # run twice: once a day

    [mine] = await _digests(database, a.id)
    assert mine.target == "admin@alfa.example" and mine.effect_key == effect_key(a.admin_id, YESTERDAY_NOON.date())
    text = mine.payload["text"]
    assert mine.payload["subject"].startswith("Alfa: digest of") and "(2)" in mine.payload["subject"]
    assert "New customer: Casa do Pão" in text and "Customer blocked: Maria" in text
    assert "Two days ago" not in text and "This morning" not in text and "Cliente novo" not in text
    assert "Hello, Admin alfa." in text and "/alfa/inbox/" in text
    [theirs] = await _digests(database, b.id)
    assert theirs.payload["subject"].startswith("Beta: resumo de") and "Olá, Admin beta." in theirs.payload["text"]
    assert "Cliente novo: João" in theirs.payload["text"] and "Casa do Pão" not in theirs.payload["text"]
    async with database.system() as session:
        jobs = (await session.execute(select(OutboxEntry).where(OutboxEntry.job == "effects.deliver"))).scalars().all()
    assert {(j.tenant_id, j.payload["message_id"]) for j in jobs} == {(a.id, str(mine.id)), (b.id, str(theirs.id))}


async def test_a_day_without_notifications_sends_nothing(database, tenants):
    await _opt_in(database, tenants.a, tenants.a.member_id, "pt-BR")
    assert await send_daily_digests(database, now=MORNING) == 0
    assert await _digests(database, tenants.a.id) == []


async def test_two_schedulers_racing_send_each_digest_once(database, tenants, monkeypatch):
    """Two runs that both read "not sent yet" (the race the pre-check cannot close): the e-mail's unique
    effect key lets only the first insert through."""
    a = tenants.a
    await _opt_in(database, a, a.admin_id, "pt-BR")
    await _notification(database, a.id, a.admin_id, "Cliente novo", YESTERDAY_NOON)

    async def nothing_sent(session, keys):
        return set()

    monkeypatch.setattr(digest_queries, "sent_digests", nothing_sent)
    assert await send_daily_digests(database, now=MORNING) == 1
    assert await send_daily_digests(database, now=MORNING) == 0
    assert len(await _digests(database, a.id)) == 1
    async with database.system() as session:
        jobs = (await session.execute(select(OutboxEntry).where(OutboxEntry.job == "effects.deliver"))).scalars().all()
    assert len(jobs) == 1


async def test_a_digest_in_english_gives_a_pt_br_companys_titles_in_english_with_that_companys_own_words(
        database, tenants):
    """Titles follow the reader's language (tenants/notifications/reading.py); each company's templates are its
    own: tenant b's English override never words tenant a's notification."""
    a, b = tenants.a, tenants.b
    config = PolicyConfig().model_dump(mode="json")
    config["templates"] = {"dunning.grace_started": {"en": {"title": "Beta's words: {{ customer.name }}", "body": "x"}}}
    async with database.tenant(b.id) as session:
        session.add(PolicyVersion(version=1, config=config, created_by="test", reason=None))
    for tenant in (a, b):
        await _opt_in(database, tenant, tenant.admin_id, "en")
        stored = _stored()
        async with database.tenant(tenant.id) as session:
            session.add(Notification(effect_key=f"test:{uuid.uuid4()}", recipient_id=tenant.admin_id, kind=stored.kind,
                                     title=stored.title, body=stored.body, detail=stored.detail,
                                     created_at=YESTERDAY_NOON))
    assert await send_daily_digests(database, now=MORNING) == 2
    [mine] = await _digests(database, a.id)
    [theirs] = await _digests(database, b.id)
    assert "Late payment: " in mine.payload["text"] and "Beta's words" not in mine.payload["text"]
    assert "Pagamento em atraso" not in mine.payload["text"]
    assert "Beta's words: " in theirs.payload["text"] and "Late payment" not in theirs.payload["text"]
