"""The person's notification preferences page: pt-BR first, English on request; saves per person;
refuses unknown fields by name; another tenant's session or a staff session never reaches it."""

from __future__ import annotations

import re

from backoffice.tenants.notifications import queries
from tests.web.console.conftest import (  # noqa: F401  fixtures: an operator of tenant A signed in to the console
    operator_client, staff_members,
)
from tests.web.portal.conftest import csrf_of


def ticked(html: str, name: str) -> bool:
    match = re.search(rf'<input type="checkbox"[^>]*name="{re.escape(name)}"[^>]*>', html)
    assert match, name
    return re.search(r"\schecked[\s>]", match.group(0)) is not None


async def test_a_person_chooses_channels_and_the_digest_and_sees_them_kept(browser, database, tenants):
    a = tenants.a
    await browser.login("/alfa", "member@alfa.example")
    page = await browser.get("/alfa/preferences")
    assert page.status_code == 200
    assert "Preferências de notificação" in page.text and "Um cliente começou" in page.text
    assert "Resumo diário" in page.text and "Notification preferences" not in page.text
    answer = await browser.post_form("/alfa/preferences", "/alfa/preferences", {
        "customer.started:email": "on", "dunning.blocked:portal": "on", "dunning.blocked:email": "on",
        "digest": "on", "locale": "en"})
    assert answer.status_code == 303 and answer.headers["location"] == "/alfa/preferences?saved=1"
    async with database.tenant(a.id) as session:
        kept = await queries.preference_of(session, a.member_id)
    assert kept.digest and kept.locale == "en"
    # Every kind the form left unticked is "none" now, except where that equals the policy (portal only).
    assert kept.channels["customer.started"] == ["email"] and kept.channels["dunning.blocked"] == ["portal", "email"]
    assert kept.channels["invoice.rejected"] == []
    shown = (await browser.get("/alfa/preferences?saved=1")).text
    assert "Preferências salvas." in shown
    assert ticked(shown, "customer.started:email") and not ticked(shown, "customer.started:portal")
    assert not ticked(shown, "dunning.resolved:portal") and ticked(shown, "digest")

    await browser.post_form("/alfa/preferences", "/alfa/locale", {"locale": "en", "next": "/preferences"})
    english = (await browser.get("/alfa/preferences")).text
    assert "Notification preferences" in english and "A customer started" in english
    assert "Preferências" not in english and "Um cliente começou" not in english


async def test_an_unknown_field_is_refused_by_name(browser, tenants):
    await browser.login("/alfa", "member@alfa.example")
    answer = await browser.post_form("/alfa/preferences", "/alfa/preferences", {"customer.started:sms": "on"})
    assert answer.status_code == 422
    assert "customer.started:sms" in answer.text and "esta opção não é uma das oferecidas nesta página" in answer.text


async def test_another_tenants_person_and_a_staff_operator_never_reach_these_preferences(browser, database, tenants,
                                                                                        operator_client):
    await browser.login("/beta", "member@beta.example")
    assert (await browser.get("/alfa/preferences")).status_code == 303  # to A's log-in page
    page = await browser.get("/beta/preferences")
    refused = await browser.client.post("/alfa/preferences", data={"digest": "on", "_csrf_token": csrf_of(page.text)},
                                        headers=browser.headers, follow_redirects=False)
    assert refused.status_code in (303, 403)
    async with database.tenant(tenants.a.id) as session:
        assert await queries.preferences_by_user(session) == {}
    for slug in ("alfa", "beta"):
        answer = await operator_client.client.get(f"/{slug}/preferences", headers={"accept": "text/html"},
                                                  follow_redirects=False)
        assert answer.status_code == 303 and "/login" in answer.headers["location"]
