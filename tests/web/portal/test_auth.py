"""Log-in, log-out, sessions bound to one tenant and rotated at log-in, CSRF, rate limits."""

from __future__ import annotations

from sqlalchemy import select

from backoffice.platform.audit.models import AuditEntry
from tests.web.portal.conftest import PASSWORD, Browser


async def test_log_in_rotates_the_session_and_log_out_ends_it(browser: Browser, tenants, database):
    first = await browser.get("/alfa/login")
    assert first.status_code == 200 and "Alfa" in first.text
    response = await browser.login("/alfa", "member@alfa.example")
    assert response.status_code == 303 and response.headers["location"] == "/alfa/dashboard"
    session_id = browser.client.cookies.get("bo_session")
    assert session_id
    set_cookie = response.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=lax" in set_cookie
    page = await browser.get("/alfa/dashboard")
    assert page.status_code == 200 and "Member alfa" in page.text

    # A second log-in replaces the id: a planted (fixated) id never becomes a logged-in session.
    again = await browser.login("/alfa", "admin@alfa.example")
    assert again.status_code == 303 and browser.client.cookies.get("bo_session") not in (None, session_id)

    out = await browser.post_form("/alfa/dashboard", "/alfa/logout", {})
    assert out.status_code == 303 and out.headers["location"] == "/alfa/login"
    after = await browser.get("/alfa/dashboard")
    assert after.status_code == 303 and after.headers["location"].startswith("/alfa/login")

    async with database.system() as session:
        actions = (await session.execute(select(AuditEntry.action, AuditEntry.tenant_id).where(
            AuditEntry.action == "user.logged_in"))).all()
    assert {tenant for _, tenant in actions} == {tenants.a.id} and len(actions) == 2


async def test_wrong_password_and_unknown_email_answer_alike(browser: Browser, tenants):
    wrong = await browser.login("/alfa", "member@alfa.example", "not-the-password")
    unknown = await browser.login("/alfa", "nobody@alfa.example", "not-the-password")
    other_tenants_user = await browser.login("/alfa", "member@beta.example")
    for response in (wrong, unknown, other_tenants_user):
        assert response.status_code == 400
        assert "E-mail ou senha incorretos." in response.text
    assert browser.client.cookies.get("bo_session") is None


async def test_a_form_without_the_csrf_token_is_refused(browser: Browser, tenants):
    await browser.get("/alfa/login")
    response = await browser.client.post("/alfa/login", data={"email": "member@alfa.example", "password": PASSWORD},
                                       follow_redirects=False)
    assert response.status_code == 403
    forged = await browser.client.post("/alfa/login", data={"email": "member@alfa.example", "password": PASSWORD,
                                                            "_csrf_token": "forged"},
                                     follow_redirects=False)
    assert forged.status_code == 403
    assert browser.client.cookies.get("bo_session") is None
    # Logged in, a state-changing form without the token is refused too.
    await browser.login("/alfa", "member@alfa.example")
    out = await browser.client.post("/alfa/logout", data={}, follow_redirects=False)
    assert out.status_code == 403
    assert (await browser.get("/alfa/dashboard")).status_code == 200


async def test_the_json_routes_get_no_csrf_or_session_cookie(portal):
    response = await portal.get("/healthz")
    assert response.status_code == 200
    assert "set-cookie" not in response.headers


async def test_log_in_is_rate_limited_per_tenant_and_email(browser: Browser, tenants):
    for _ in range(5):
        assert (await browser.login("/alfa", "member@alfa.example", "wrong-password!")).status_code == 400
    blocked = await browser.login("/alfa", "member@alfa.example")  # even the right password now waits
    assert blocked.status_code == 429
    assert browser.client.cookies.get("bo_session") is None
    # Another account, and the same e-mail on another tenant, are not held back.
    assert (await browser.login("/alfa", "admin@alfa.example")).status_code == 303
    assert (await browser.login("/beta", "member@beta.example")).status_code == 303


async def test_nul_bytes_in_forms_are_refused_not_a_server_error(browser: Browser, tenants):
    assert (await browser.login("/alfa", "member\x00@alfa.example")).status_code == 400
    forgot = await browser.post_form("/alfa/password/forgot", "/alfa/password/forgot", {"email": "a\x00@alfa.example"})
    assert forgot.status_code == 200
    assert (await browser.get("/alfa/password/reset/abc%00def")).status_code == 410
    assert (await browser.login("/alfa", "member@alfa.example")).status_code == 303
    assert (await browser.get("/alfa/customers", params={"q": "Casa\x00"})).status_code == 200
    note = await browser.post_form("/alfa/customers", f"/alfa/customers/{tenants.a.customer_ids[0]}/notes",
                                   {"text": "bad\x00note"})
    assert note.status_code == 422 and "NUL" in note.text
