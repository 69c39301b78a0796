"""Password reset by a one-time e-mailed link: same answer for any address, hashed token, 30 minutes, single
use, bound to its tenant; the e-mail goes out through the effects outbox like every other e-mail."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from backoffice.platform import clock
from backoffice.platform.clock import FrozenClock
from backoffice.platform.outbox.models import OutboxEntry
from backoffice.tenants.effects.models import Channel, OutboundMessage
from backoffice.tenants.users.resets import PasswordReset
from tests.web.portal.conftest import Browser

NEW_PASSWORD = "a-brand-new-secret"
CSRF_VALUE = re.compile(r'name="_csrf_token" value="[^"]*"')
LINK = re.compile(r"https?://\S+/password/reset/(\S+)")


@pytest.fixture
def frozen():
    frozen = FrozenClock(datetime(2026, 11, 2, 15, 0, tzinfo=UTC))
    previous = clock.use(frozen)
    yield frozen
    clock.use(previous)


async def _ask(browser: Browser, base: str, email: str):
    return await browser.post_form(f"{base}/password/forgot", f"{base}/password/forgot", {"email": email})


async def _messages(database, tenant_id):
    async with database.tenant(tenant_id) as session:
        return list((await session.execute(select(OutboundMessage))).scalars())


async def test_the_link_works_once_and_the_new_password_logs_in(browser: Browser, tenants, database, frozen):
    known = await _ask(browser, "/alfa", "member@alfa.example")
    unknown = await _ask(browser, "/alfa", "nobody@alfa.example")
    assert known.status_code == unknown.status_code == 200
    assert CSRF_VALUE.sub("", known.text) == CSRF_VALUE.sub("", unknown.text)

    [message] = await _messages(database, tenants.a.id)
    assert message.channel == Channel.EMAIL and message.target == "member@alfa.example"
    token = LINK.search(message.payload["text"]).group(1)
    async with database.tenant(tenants.a.id) as session:
        [reset] = (await session.execute(select(PasswordReset))).scalars().all()
        queued = (await session.execute(select(OutboxEntry.payload).where(OutboxEntry.job == "effects.deliver"))).scalars().all()
    assert reset.token_hash != token and token not in reset.token_hash  # only the hash is kept
    assert {"message_id": str(message.id)} in queued

    assert (await browser.get(f"/alfa/password/reset/{token}")).status_code == 200
    assert (await browser.get(f"/beta/password/reset/{token}")).status_code == 410  # bound to its tenant
    done = await browser.post_form(f"/alfa/password/reset/{token}", f"/alfa/password/reset/{token}",
                                   {"password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD})
    assert done.status_code == 303 and done.headers["location"] == "/alfa/login?reset=1"
    assert (await browser.login("/alfa", "member@alfa.example")).status_code == 400  # the old one is gone
    assert (await browser.login("/alfa", "member@alfa.example", NEW_PASSWORD)).status_code == 303

    again = await browser.post_form("/alfa/login", f"/alfa/password/reset/{token}",
                                    {"password": "yet-another-secret", "password_confirm": "yet-another-secret"})
    assert again.status_code == 410
    assert (await browser.get(f"/alfa/password/reset/{token}")).status_code == 410


async def test_the_link_expires_after_30_minutes(browser: Browser, tenants, database, frozen):
    await _ask(browser, "/alfa", "admin@alfa.example")
    [message] = await _messages(database, tenants.a.id)
    token = LINK.search(message.payload["text"]).group(1)
    frozen.advance(minutes=29)
    assert (await browser.get(f"/alfa/password/reset/{token}")).status_code == 200
    frozen.advance(minutes=2)
    assert (await browser.get(f"/alfa/password/reset/{token}")).status_code == 410
    late = await browser.post_form("/alfa/login", f"/alfa/password/reset/{token}",
                                   {"password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD})
    assert late.status_code == 410
    assert (await browser.login("/alfa", "admin@alfa.example", NEW_PASSWORD)).status_code == 400


async def test_a_weak_password_is_refused_naming_the_field_and_keeps_the_link(browser: Browser, tenants, database, frozen):
    await _ask(browser, "/alfa", "admin@alfa.example")
    [message] = await _messages(database, tenants.a.id)
    token = LINK.search(message.payload["text"]).group(1)
    weak = await browser.post_form(f"/alfa/password/reset/{token}", f"/alfa/password/reset/{token}",
                                   {"password": "short", "password_confirm": "short"})
    assert weak.status_code == 400 and 'id="password" name="password"' in weak.text and 'aria-invalid="true"' in weak.text
    assert "Pelo menos 10 caracteres." in weak.text  # the service's sentence, in the reader's language
    assert (await browser.get(f"/alfa/password/reset/{token}")).status_code == 200
    assert await _messages(database, tenants.b.id) == []  # nothing was written for the other tenant
