"""The demo mailbox (issue 15, item 8): in the demo, a company's page lists what its back office sent as
recorded (a password reset's link opens the reset form); only that company's, only what was sent; a 404
in any other environment."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from litestar.testing import AsyncTestClient
from sqlalchemy import select

from backoffice.web.entry.demo import DEMO_PASSWORD
from backoffice.web.entry.demo_activity import Spine
from backoffice.tenants.effects.models import Channel, DeliveryStatus, OutboundMessage
from backoffice.tenants.effects.ports import RecordingPort, set_port
from backoffice.tenants.registry.models import Tenant
from backoffice.web.app import create_app
from tests.demo_support import seed_demo_for_test
from tests.web.portal.conftest import Browser


async def _recorded(database, tenant_id) -> tuple[int, int]:
    """(sent as recorded, not sent) of the tenant's e-mails and platform commands."""
    async with database.tenant(tenant_id) as session:
        rows = list((await session.execute(select(OutboundMessage).where(
            OutboundMessage.channel.in_([Channel.EMAIL, Channel.PLATFORM])))).scalars())
    sent = [m for m in rows if m.status == DeliveryStatus.SENT and (m.response or {}).get("recorded")]
    return len(sent), len([m for m in rows if m.status != DeliveryStatus.SENT])


async def test_the_mailbox_shows_a_reset_link_that_works_and_only_the_companys_sent_messages(database):
    await seed_demo_for_test(database)
    async with database.system() as session:
        ids = {t.slug: t.id for t in (await session.execute(select(Tenant))).scalars()}
    # E-mails are recorded for this test whatever the backend (on PostgreSQL the embedded fallback is off).
    previous = set_port(Channel.EMAIL, RecordingPort(Channel.EMAIL))
    settings = database.settings.model_copy(update={"environment": "demo"})
    try:
        async with AsyncTestClient(app=create_app(settings)) as client:
            browser = Browser(client)
            asked = await browser.post_form("/aurora/password/forgot", "/aurora/password/forgot",
                                            {"email": "ana@aurora.example"})
            assert asked.status_code == 200 and 'href="/aurora/demo/mailbox"' in asked.text
            with Spine(database, database.settings) as spine:
                await spine.settle()

            page = await browser.get("/aurora/demo/mailbox")
            assert page.status_code == 200 and "Caixa de correio da demonstração" in page.text
            links = re.findall(r'href="(https?://[^"]+/aurora/password/reset/[^"]+)"', page.text)
            assert len(links) == 1, page.text
            form = await browser.get(urlsplit(links[0]).path)
            assert form.status_code == 200 and 'name="password"' in form.text
            reset = await browser.post_form(urlsplit(links[0]).path, urlsplit(links[0]).path,
                                            {"password": DEMO_PASSWORD + "-new", "password_confirm": DEMO_PASSWORD + "-new"})
            assert reset.status_code == 303 and reset.headers["location"].endswith("/aurora/login?reset=1")
            switched = await browser.post_form("/aurora/login", "/aurora/locale", {"locale": "en", "next": "/login"})
            assert switched.status_code == 303
            english = (await browser.get("/aurora/demo/mailbox")).text
            assert "Demo mailbox" in english and "Caixa de correio" not in english and "E-mail to" in english

            other = (await browser.get("/vitta/demo/mailbox")).text
            assert "/aurora/password/reset/" not in other and "ana@aurora.example" not in other
            for slug in ("aurora", "vitta"):
                sent, unsent = await _recorded(database, ids[slug])
                text = (await browser.get(f"/{slug}/demo/mailbox")).text
                # Exactly the messages recorded as sent; a dead or pending one (Vitta's refused block) is not.
                assert text.count('class="stack mailbox-message"') == sent
                if slug == "vitta":
                    assert unsent >= 1
            if database.settings.embedded:
                assert (await _recorded(database, ids["vitta"]))[0] > 0
            assert (await browser.get("/nobody/demo/mailbox")).status_code == 404
    finally:
        set_port(Channel.EMAIL, previous)


async def test_the_mailbox_is_not_found_outside_the_demo(database):
    await seed_demo_for_test(database)
    for environment in ("production", "staging", "test"):
        settings = database.settings.model_copy(update={"environment": environment})
        async with AsyncTestClient(app=create_app(settings)) as client:
            for slug in ("aurora", "vitta"):
                answer = await Browser(client).get(f"/{slug}/demo/mailbox")
                assert answer.status_code == 404, (environment, answer.text[:200])
                assert "Caixa de correio" not in answer.text
            forgot = Browser(client)
            asked = await forgot.post_form("/aurora/password/forgot", "/aurora/password/forgot",
                                           {"email": "ana@aurora.example"})
            assert asked.status_code == 200 and "/demo/mailbox" not in asked.text
