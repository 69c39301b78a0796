"""The front office's notes reach the staff's feedback inbox: newest first across the tenants a staff member
serves (and only those), filterable, with a read/acknowledged state; a staff reply lands on the customer's
timeline."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from backoffice.platform import clock
from backoffice.platform.audit.models import AuditEntry
from backoffice.platform.audit.service import Actor
from backoffice.platform.clock import FrozenClock
from backoffice.platform.errors import InputRefused, ValidationFailed
from backoffice.platform.db.session import NotFound
from backoffice.tenants.timeline.models import FeedbackItem, FeedbackState
from backoffice.tenants.overview.queries import unread_feedback
from backoffice.tenants.timeline.queries import feedback_filter, feedback_inbox
from backoffice.tenants.timeline.service import add_note, mark_feedback, reply_to_feedback, timeline

STAFF = Actor(type="staff", label="ana@provider.example", id=str(uuid.UUID(int=7)))


def _user(tenant) -> Actor:
    return Actor(type="tenant_user", label=f"admin@{tenant.slug}.example", id=str(tenant.admin_id))


@pytest.fixture
async def notes(database, tenants):
    """Three notes in alfa and one in beta, a minute apart, recorded as the portal records them."""
    frozen = FrozenClock(clock.now() - timedelta(minutes=10))  # in the past: a reply comes after them
    previous = clock.use(frozen)
    made = {}
    try:
        for tenant, customer, label, text in (
                (tenants.a, 0, "feedback", "Cliente adorou o novo plano"),
                (tenants.a, 1, "note", "Pediu boleto em vez de Pix"),
                (tenants.b, 0, "feedback", "Beta: reclamou do atraso na nota fiscal"),
                (tenants.a, 0, "feedback", "=HYPERLINK(\"http://x\") 100% sério_")):
            frozen.advance(minutes=1)
            async with database.tenant(tenant.id) as session:
                entry = await add_note(session, tenant.customer_ids[customer], text=text, author_id=tenant.admin_id,
                                       label=label, acting=_user(tenant))
                made[text] = entry.id
    finally:
        clock.use(previous)
    return made


async def test_a_note_becomes_an_unread_item_and_the_inbox_is_newest_first_across_tenants(database, tenants, notes):
    async with database.system() as session:
        rows, cursor = await feedback_inbox(session, tenant_ids=None)
        unread = await unread_feedback(session, None, [tenants.a.id, tenants.b.id])
    assert [r.text for r in rows] == list(reversed(notes))
    assert cursor is None
    assert {r.state for r in rows} == {FeedbackState.UNREAD}
    assert rows[0].author == "Admin alfa" and rows[0].customer_name == "Casa do Pão" and rows[0].tenant_name == "Alfa"
    assert unread == {tenants.a.id: 3, tenants.b.id: 1}


async def test_an_operator_of_alfa_never_sees_betas_feedback(database, tenants, notes):
    async with database.system() as session:
        rows, _ = await feedback_inbox(session, tenant_ids=[tenants.a.id])
        assert {r.tenant_id for r in rows} == {tenants.a.id} and len(rows) == 3
        # Asking for beta by filter, with alfa as the scope, finds nothing.
        rows, _ = await feedback_inbox(session, tenant_ids=[tenants.a.id], filters=feedback_filter(
            tenant=str(tenants.b.id)))
        assert rows == []
        assert await unread_feedback(session, None, [tenants.a.id]) == {tenants.a.id: 3}
        assert await feedback_inbox(session, tenant_ids=[]) == ([], None)
    # Beta's item cannot be read or changed through alfa's door.
    async with database.provider(tenants.b.id) as session:
        [beta_item] = (await session.execute(select(FeedbackItem))).scalars().all()
    async with database.provider(tenants.a.id) as session:
        with pytest.raises(NotFound):
            await mark_feedback(session, beta_item.id, state="read", acting=STAFF)
        with pytest.raises(NotFound):
            await reply_to_feedback(session, beta_item.id, text="oi", author_name="Ana", acting=STAFF)


async def test_filters_by_tenant_kind_state_and_text_and_pages_by_cursor(database, tenants, notes):
    async with database.system() as session:
        async def texts(**given):
            rows, _ = await feedback_inbox(session, tenant_ids=None, filters=feedback_filter(**given))
            return [r.text for r in rows]

        assert await texts(tenant=str(tenants.b.id)) == ["Beta: reclamou do atraso na nota fiscal"]
        assert await texts(kind="note") == ["Pediu boleto em vez de Pix"]
        assert await texts(text="PIX") == ["Pediu boleto em vez de Pix"]
        # LIKE's wildcards are searched for as text.
        assert await texts(text="100%") == ["=HYPERLINK(\"http://x\") 100% sério_"]
        assert await texts(text="_") == ["=HYPERLINK(\"http://x\") 100% sério_"]
        assert await texts(state="read") == []
        first, cursor = await feedback_inbox(session, tenant_ids=None, limit=2)
        second, last = await feedback_inbox(session, tenant_ids=None, limit=2, cursor=cursor)
    assert [r.text for r in first + second] == list(reversed(notes)) and last is None


@pytest.mark.parametrize("given, field", [
    ({"kind": "complaint"}, "kind"), ({"state": "done"}, "state"), ({"tenant": "alfa"}, "tenant"),
    ({"q": "x" * 201}, "q"), ({"q": "a\x00b"}, "q"),
])
async def test_bad_filters_are_refused_naming_the_field(given, field):
    given = {("text" if k == "q" else k): v for k, v in given.items()}
    with pytest.raises(ValidationFailed) as raised:
        feedback_filter(**given)
    assert [e.field for e in raised.value.errors] == [field]


async def test_a_forged_cursor_is_refused(database, tenants, notes):
    async with database.system() as session:
        for cursor in ("nonsense", "W10", "x" * 300):
            with pytest.raises(InputRefused) as raised:
                await feedback_inbox(session, tenant_ids=None, cursor=cursor)
            assert raised.value.errors[0].field == "cursor"


async def test_state_changes_and_a_reply_are_recorded_audited_and_on_the_timeline(database, tenants, notes):
    async with database.provider(tenants.a.id) as session:
        item = (await session.execute(select(FeedbackItem).where(
            FeedbackItem.entry_id == notes["Cliente adorou o novo plano"]))).scalar_one()
        read = await mark_feedback(session, item.id, state="read", acting=STAFF)
        assert (read.state, read.state_changed_by) == (FeedbackState.READ, "ana@provider.example")
        with pytest.raises(ValidationFailed) as raised:
            await mark_feedback(session, item.id, state="archived", acting=STAFF)
        assert raised.value.errors[0].field == "state"
        with pytest.raises(ValidationFailed) as raised:
            await reply_to_feedback(session, item.id, text="  ", author_name="Ana", acting=STAFF)
        assert raised.value.errors[0].field == "text"
        reply = await reply_to_feedback(session, item.id, text="Obrigada! Vamos manter o desconto.\nAna",
                                        author_name="Ana Admin", acting=STAFF)
        customer_id = item.customer_id
    async with database.tenant(tenants.a.id) as session:  # what the portal reads
        entries = await timeline(session, customer_id)
        item = await session.get(FeedbackItem, (tenants.a.id, item.id))
    assert entries[0].id == reply.id and entries[0].kind == "reply"
    assert entries[0].reason == "Obrigada! Vamos manter o desconto.\nAna"
    assert entries[0].ref == {"label": "staff_reply", "author": "Ana Admin",
                              "in_reply_to": str(notes["Cliente adorou o novo plano"])}
    assert (item.state, item.replies) == (FeedbackState.ACKNOWLEDGED, 1)
    async with database.system() as session:
        actions = [(e.action, e.tenant_id, e.actor_label) for e in (await session.execute(
            select(AuditEntry).where(AuditEntry.action.like("feedback.%")).order_by(AuditEntry.occurred_at)))
            .scalars()]
        unread = await unread_feedback(session, None)
    assert actions == [("feedback.read", tenants.a.id, "ana@provider.example"),
                       ("feedback.replied", tenants.a.id, "ana@provider.example")]
    assert unread == {tenants.a.id: 2, tenants.b.id: 1}


async def test_the_demo_gives_the_inbox_something_and_answers_one(database):
    from tests.demo_support import seed_demo_for_test

    await seed_demo_for_test(database)
    async with database.system() as session:
        rows, _ = await feedback_inbox(session, tenant_ids=None)
        unread = await unread_feedback(session, None)
    assert len(rows) == 4 and {r.tenant_name for r in rows} == {"Aurora Software", "Vitta Academias"}
    assert sorted(unread.values()) == [1, 2]  # Aurora's first feedback was answered
    [answered] = [r for r in rows if r.replies]
    assert answered.state == FeedbackState.ACKNOWLEDGED and answered.customer_name == "Casa do Pão Ltda"


async def test_the_inbox_and_the_counts_are_one_statement_each_whatever_the_tenants(database, tenants, notes):
    from sqlalchemy import event

    seen: list[str] = []

    def count(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            seen.append(statement)

    event.listen(database.system_engine.sync_engine, "before_cursor_execute", count)
    try:
        async with database.system() as session:
            for scope in (None, [tenants.a.id], [tenants.a.id, tenants.b.id]):
                seen.clear()
                await feedback_inbox(session, tenant_ids=scope, filters=feedback_filter(text="cliente"))
                await unread_feedback(session, None, scope)
                assert len(seen) == 2, seen
    finally:
        event.remove(database.system_engine.sync_engine, "before_cursor_execute", count)
