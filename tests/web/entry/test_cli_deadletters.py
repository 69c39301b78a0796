"""``backoffice deadletters replay``: an operator replays a time window of a tenant's dead letters and follows
them to their outcome with a progress bar while the spine's workers handle them; the other tenant's dead
letters are untouched; the replay is audited as ``cli:<os user>``; a bad window is refused naming the field."""

from __future__ import annotations

import asyncio

from click.testing import CliRunner, Result
from sqlalchemy import select

from backoffice.platform.audit.models import AuditEntry
from backoffice.web.entry.cli import main
from backoffice.platform.settings import get_settings
from backoffice.tenants.effects.models import Channel, DeliveryStatus, OutboundMessage
from backoffice.tenants.events.models import Event, EventStatus
from tests.conftest import env_for_subprocess
from tests.tenants.conftest import spine  # noqa: F401  (the running pipeline fixture)
from tests.tenants.deadletters.conftest import write_letters


async def backoffice(spine, *args: str) -> Result:  # noqa: F811
    env = env_for_subprocess(spine.database.settings)
    get_settings.cache_clear()
    try:
        command = asyncio.create_task(asyncio.to_thread(CliRunner().invoke, main, list(args), env=env))
        while not command.done():
            await spine.settle()
            await asyncio.sleep(0.02)
        result = command.result()
    finally:
        get_settings.cache_clear()
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


async def test_a_window_is_replayed_and_followed_to_its_outcome(spine, database, tenants):  # noqa: F811
    a = await write_letters(database, tenants.a.id, failed=2)
    b = await write_letters(database, tenants.b.id, failed=2)
    # T0 is 09:00 in São Paulo (the tenant's zone, used for times without an offset): the window holds A's dead
    # e-mail (09:30) and none of its failed events (09:00, 10:00) nor its webhook delivery (10:30).
    result = await backoffice(spine, "deadletters", "replay", "alfa", "--since", "2026-11-20T09:15",
                              "--until", "2026-11-20T09:45", "--reason", "SMTP relay fixed", "--follow",
                              "--interval", "0.05")
    assert "1 requeued, 0 skipped" in result.output, result.output
    assert "1/1 settled, 0 failed again" in result.output
    assert "1 processed or delivered, 0 failed again" in result.output and result.exit_code == 0
    async with database.provider(tenants.a.id) as session:
        message = await session.get(OutboundMessage, (tenants.a.id, a.message))
        events = {e.status for e in (await session.execute(select(Event).where(Event.id.in_(a.failed)))).scalars()}
    assert message.status == DeliveryStatus.SENT and message.attempts == 1  # the e-mail went out this time
    assert [m.payload["to"] for m in spine.sent(Channel.EMAIL, tenants.a.id)] == ["c@example.com"]
    assert events == {EventStatus.FAILED}

    async with database.provider(tenants.b.id) as session:
        assert {e.status for e in (await session.execute(select(Event))).scalars()} == {
            EventStatus.FAILED, EventStatus.UNMATCHED, EventStatus.PROCESSED}
        assert (await session.get(OutboundMessage, (tenants.b.id, b.message))).status == DeliveryStatus.DEAD
    assert spine.sent(Channel.EMAIL, tenants.b.id) == []
    async with database.system() as session:
        audit = (await session.execute(select(AuditEntry).where(AuditEntry.action == "dead_letters.replayed"))
                 ).scalars().one()
    assert audit.actor_label.startswith("cli:") and audit.tenant_id == tenants.a.id
    assert audit.reason == "SMTP relay fixed" and audit.detail["requeued"] == 1


async def test_a_window_without_its_end_is_refused_naming_the_field(spine, database, tenants):  # noqa: F811
    await write_letters(database, tenants.a.id)
    result = await backoffice(spine, "deadletters", "replay", "alfa", "--since", "2026-11-20")
    assert result.exit_code == 2 and "error: until: expected a date and time" in result.output
