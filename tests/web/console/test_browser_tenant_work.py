"""Working one tenant in a real browser (Debian's chromium driven by Playwright): a webhook to the company's
system failed for good while its receiver was down (a local server answering 503 through the whole retry
schedule); the receiver is back, a staff member signs in with TOTP, finds the dead delivery in the tenant's
dead letters, replays it from the page, and watches the replay's page turn to "delivered" by itself while
the worker sends it; the receiver got it, signed, with the same webhook-id. Screenshots of every page of the
tenant's console, in pt-BR and in English, go to tests/artifacts/ (not committed)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from backoffice.platform import clock
from backoffice.platform.clock import FrozenClock
from backoffice.tenants.customers.models import Customer
from backoffice.tenants.timeline.messages import Msg, stored_message
from backoffice.tenants.webhooks.models import WebhookDelivery, WebhookDeliveryStatus
from backoffice.tenants.webhooks.jobs import MAX_ATTEMPTS
from backoffice.web.app import create_app
from tests.tenants.deadletters.conftest import write_letters
from tests.tenants.routines.scripted import registered, scripted
from tests.tenants.webhooks.conftest import loopback, receiver, webhook_port  # noqa: F401  (fixtures)
from tests.providers.webhook_receiver import Reply, run_due
from tests.tenants.webhooks.test_jobs import endpoint, event_message, reload
from tests.web.console.conftest import PASSWORD
from tests.web.portal.test_browser import ARGS, ARTIFACTS, LiveServer, _chromium

ROUTINE, _ = scripted("test_browser_billing", refusal="recusado")


async def _dead_webhook(database, tenant_id, receiver, frozen: FrozenClock, loopback):  # noqa: F811
    """A webhook message fanned out to the company's endpoint, every attempt answered 503, until it is dead."""
    await endpoint(database, tenant_id, receiver, "/erp", loopback)
    receiver.always["/erp"] = Reply(503, "maintenance")
    message = await event_message(database, tenant_id, "payment.overdue", "evt-browser:webhook")
    async with database.provider(tenant_id) as session:  # the customer's, on its timeline as the spine puts it
        from backoffice.tenants.effects.models import OutboundMessage
        from backoffice.tenants.timeline.models import TimelineEntry

        customer_id = (await session.execute(select(Customer.id).order_by(Customer.name))).scalars().first()
        (await session.get(OutboundMessage, (tenant_id, message.id))).customer_id = customer_id
        title = Msg("Webhook {type} to the company's systems", type="payment.overdue")
        reason = Msg("{type} processed", type="payment.overdue")
        session.add(TimelineEntry(customer_id=customer_id, at=clock.now(), kind="effect", title=str(title),
                                  reason=str(reason),
                                  message=stored_message(title, reason), event_id=None,
                                  ref={"message_id": str(message.id), "channel": "webhook"}))
    await run_due(database)  # the message fans out; the delivery's first attempt fails
    async with database.provider(tenant_id) as session:
        delivery = (await session.execute(select(WebhookDelivery))).scalars().one()
    for _ in range(2, MAX_ATTEMPTS + 1):
        row = await reload(database, tenant_id, WebhookDelivery, delivery.id)
        frozen.set(row.next_attempt_at)
        await run_due(database)
    dead = await reload(database, tenant_id, WebhookDelivery, delivery.id)
    assert dead.status == WebhookDeliveryStatus.DEAD and dead.last_error.endswith("HTTP 503")
    assert len(receiver.at("/erp")) == MAX_ATTEMPTS
    return message, dead, customer_id


@pytest.mark.postgres_only
async def test_a_dead_webhook_replayed_from_the_console_is_delivered(database, tenants, staff_members, receiver,
                                                                      loopback, webhook_port):  # noqa: F811
    from playwright.async_api import async_playwright, expect

    executable = _chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    frozen = FrozenClock(clock.now())  # the real time, moved on by the retry schedule (TOTP reads it too)
    previous = clock.use(frozen)
    try:
        a = tenants.a
        message, dead, customer_id = await _dead_webhook(database, a.id, receiver, frozen, loopback)
        # More of both tenants' dead letters, written after the fan-out (their stand-in endpoints sign nothing).
        await write_letters(database, a.id, url="https://alfa-erp.example/hooks")
        await write_letters(database, tenants.b.id, url="https://beta-erp.example/hooks")
        frozen.advance(minutes=30)
        receiver.always["/erp"] = Reply(200)  # the receiver is back
        base = f"/staff/tenants/{a.id}"
        with registered(ROUTINE):
            async with LiveServer(create_app(database.settings)) as server, async_playwright() as playwright:
                browser = await playwright.chromium.launch(executable_path=executable, args=ARGS)
                try:
                    page = await browser.new_page(viewport={"width": 1280, "height": 860})
                    await page.goto(f"{server.url}/staff/login")
                    await page.get_by_label("E-mail").fill(staff_members.operator.email)
                    await page.get_by_label("Senha").fill(PASSWORD)
                    await page.get_by_label("Senha").press("Enter")
                    await page.get_by_label("Código").fill(staff_members.operator.totp.code())
                    await page.get_by_label("Código").press("Enter")
                    await page.goto(f"{server.url}{base}")
                    await expect(page.get_by_role("heading", name="Alfa")).to_be_visible()
                    await expect(page.get_by_text("Beta", exact=True)).to_have_count(0)

                    await page.get_by_role("navigation", name="Esta empresa").get_by_role(
                        "link", name="Mensagens mortas").click()
                    await page.get_by_role("link", name="Entregas de webhook").click()
                    row = page.get_by_role("row").filter(has_text=receiver.url("/erp"))
                    await expect(row.get_by_text("morta")).to_be_visible()
                    await expect(page.get_by_text("beta-erp.example")).to_have_count(0)
                    await page.screenshot(path=ARTIFACTS / "console-tenant-dead-letters-webhooks.png", full_page=True)
                    await row.get_by_role("button", name="Reenviar").click()

                    # The replay's page: requeued and waiting, until the worker (run here) delivers it.
                    await expect(page.get_by_role("heading", name="Reenvio de")).to_be_visible()
                    await expect(page.get_by_role("cell", name="reenfileirados, aguardando")).to_be_visible()
                    await page.screenshot(path=ARTIFACTS / "console-tenant-replay-waiting.png", full_page=True)
                    assert await run_due(database) == 1
                    await expect(page.get_by_role("cell", name="processados / entregues")).to_be_visible(timeout=10_000)
                    await expect(page.locator("#replay-progress").get_by_text("entregue", exact=True)).to_be_visible()
                    await page.screenshot(path=ARTIFACTS / "console-tenant-replay-delivered.png", full_page=True)
                    delivered = receiver.at("/erp")[-1]
                    assert delivered.verified, delivered.problem
                    assert delivered.webhook_id == dead.message_id == message.effect_key
                    replayed = await reload(database, a.id, WebhookDelivery, dead.id)
                    assert (replayed.status, replayed.attempts, replayed.replays) == (
                        WebhookDeliveryStatus.SUCCEEDED, 1, 1)

                    await _tour(page, server.url, base, a, message.id, "pt-BR")
                    await page.goto(f"{server.url}{base}/customers/{customer_id}")  # the timeline in its reader's words
                    await expect(page.get_by_text("Webhook payment.overdue para os sistemas da empresa")).to_be_visible()
                    await expect(page.get_by_text("Motivo: payment.overdue processado")).to_be_visible()
                    await page.get_by_label("Idioma").select_option("en")
                    await page.get_by_role("button", name="Trocar").click()
                    await expect(page.get_by_role("navigation", name="This company").get_by_role("link", name="Dead letters")
                                       ).to_be_visible()
                    await _tour(page, server.url, base, a, message.id, "en")
                    await page.goto(f"{server.url}{base}/customers/{customer_id}")
                    await expect(page.get_by_text("Webhook payment.overdue to the company's systems")).to_be_visible()

                    phone = await browser.new_page(viewport={"width": 390, "height": 844})
                    await phone.context.add_cookies(await page.context.cookies())
                    await phone.goto(f"{server.url}{base}/dead-letters")
                    await phone.screenshot(path=ARTIFACTS / "console-tenant-dead-letters-phone.png", full_page=True)
                finally:
                    await browser.close()
    finally:
        clock.use(previous)


async def _tour(page, url: str, base: str, tenant, message_id, locale: str) -> None:
    """Every page of the tenant's console, as a screenshot in this language; each shows tenant A's data."""
    pages = [
        ("home", ""), ("customers", "/customers"), ("customer", f"/customers/{tenant.customer_ids[0]}"),
        ("routines", "/routines"), ("dead-letters-events", "/dead-letters"),
        ("dead-letters-messages", "/dead-letters?kind=messages"), ("unmatched", "/unmatched"),
        ("deliveries", "/deliveries"), ("deliveries-webhooks", "/deliveries?channel=webhook"),
        ("delivery", f"/deliveries/{message_id}"), ("replays", "/replays"),
    ]
    for name, path in pages:
        answer = await page.goto(f"{url}{base}{path}")
        assert answer.status == 200, (name, answer.status)
        assert "Beta" not in await page.locator("main").inner_text(), name
        await page.screenshot(path=ARTIFACTS / f"console-tenant-{name}-{locale}.png", full_page=True)
    await page.goto(f"{url}{base}/routines")
    if locale == "pt-BR":  # a run started from the routines page; its page polls its progress
        await page.locator(f"#routine-{ROUTINE.name}").get_by_role("button", name="Iniciar uma execução").click()
    else:
        await page.get_by_role("row").nth(1).get_by_role("link").click()
    await page.wait_for_url(f"**{base}/routine-runs/**")
    assert await page.locator("#run-progress[hx-trigger]").count() == 1
    await page.screenshot(path=ARTIFACTS / f"console-tenant-run-{locale}.png", full_page=True)
    await page.goto(f"{url}{base}/replays")
    await page.get_by_role("row").nth(1).get_by_role("link").click()
    await page.wait_for_url(f"**{base}/replays/**")
    await page.screenshot(path=ARTIFACTS / f"console-tenant-replay-{locale}.png", full_page=True)
