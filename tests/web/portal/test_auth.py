"""Log-in, log-out, sessions bound to one tenant and rotated at log-in, CSRF, rate limits."""

from __future__ import annotations

from sqlalchemy import select

from backoffice.platform.audit.models import AuditEntry
from backoffice.platform.ratelimit import LOG_IN
from tests.web.portal.conftest import HTML, PASSWORD, Browser, csrf_of


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
    for _ in range(LOG_IN.per_account):
        assert (await browser.login("/alfa", "member@alfa.example", "wrong-password!")).status_code == 400
    blocked = await browser.login("/alfa", " Member@Alfa.example")  # even the right password now waits
    assert blocked.status_code == 429 and 0 < int(blocked.headers["retry-after"]) <= LOG_IN.window
    assert browser.client.cookies.get("bo_session") is None
    # Another account, and the same e-mail on another tenant, are not held back.
    assert (await browser.login("/alfa", "admin@alfa.example")).status_code == 303
    assert (await browser.login("/beta", "member@beta.example")).status_code == 303


async def test_nul_bytes_in_forms_are_refused_not_a_server_error(browser: Browser, tenants):
    # The input rule (web/input_rules.py) refuses them before any page reads them: a 400 page naming the
    # field, for the value's shape alone (the forgotten-password answer still says nothing about accounts).
    assert (await browser.login("/alfa", "member\x00@alfa.example")).status_code == 400
    forgot = await browser.post_form("/alfa/password/forgot", "/alfa/password/forgot", {"email": "a\x00@alfa.example"})
    assert forgot.status_code == 400 and "email" in forgot.text
    assert (await browser.get("/alfa/password/reset/abc%00def")).status_code == 400
    assert (await browser.login("/alfa", "member@alfa.example")).status_code == 303
    assert (await browser.get("/alfa/customers", params={"q": "Casa\x00"})).status_code == 400
    note = await browser.post_form("/alfa/customers", f"/alfa/customers/{tenants.a.customer_ids[0]}/notes",
                                   {"text": "bad\x00note"})
    assert note.status_code == 400 and "NUL" in note.text


async def test_a_cross_origin_post_is_refused_even_with_a_valid_token(browser: Browser, tenants):
    token = csrf_of((await browser.get("/alfa/login")).text)
    form = {"email": "member@alfa.example", "password": PASSWORD, "_csrf_token": token}

    async def post(path: str, **headers: str):
        return await browser.client.post(path, data=form, headers={**HTML, **headers}, follow_redirects=False)

    # Another site's page posting our form (login CSRF), by Origin, by Referer, or from an opaque origin.
    for foreign in ({"origin": "https://evil.example"}, {"origin": "http://testserver.local.evil.example"},
                    {"origin": "https://testserver.local"}, {"origin": "null"},
                    {"referer": "https://evil.example/testserver.local/alfa/login"}):
        refused = await post("/alfa/login", **foreign)
        assert refused.status_code == 403, foreign
    assert browser.client.cookies.get("bo_session") is None
    # The same origin, by Origin or by Referer, is let through (the token is still checked).
    assert (await post("/alfa/login", origin="http://testserver.local")).status_code == 303
    assert (await post("/alfa/logout", referer="http://testserver.local/alfa/dashboard")).status_code == 303
    assert (await post("/alfa/login", origin="http://testserver.local:80")).status_code == 303
    # Logged in, a cross-origin log-out is refused and the session stays.
    out = await browser.client.post("/alfa/logout", data={"_csrf_token": token}, follow_redirects=False,
                                    headers={**HTML, "origin": "https://evil.example"})
    assert out.status_code == 403
    assert (await browser.get("/alfa/dashboard")).status_code == 200


async def test_the_origin_check_knows_custom_hosts_and_the_base_url_and_spares_the_api(database, tenants):
    from litestar.testing import AsyncTestClient
    from sqlalchemy import update

    from backoffice.tenants.registry.models import Tenant
    from backoffice.web.app import create_app

    async with database.system() as session:
        await session.execute(update(Tenant).where(Tenant.id == tenants.a.id).values(custom_host="portal.alfa.example"))
    settings = database.settings.model_copy(update={"base_url": "http://platform.example"})
    async with AsyncTestClient(app=create_app(settings)) as client:
        on_custom = Browser(client, host="portal.alfa.example")
        token = csrf_of((await on_custom.get("/login")).text)
        form = {"email": "member@alfa.example", "password": PASSWORD, "_csrf_token": token}

        async def post(origin: str):
            return await client.post("/login", data=form, follow_redirects=False,
                                     headers={**on_custom.headers, "origin": origin})

        assert (await post("http://testserver.local")).status_code == 403  # the platform host is not this host
        assert (await post("http://portal.beta.example")).status_code == 403
        assert (await post("http://portal.alfa.example")).status_code == 303
        assert (await post("http://platform.example")).status_code == 303  # BACKOFFICE_BASE_URL's origin
        # Bearer-authenticated API routes carry no browser session: a foreign Origin changes nothing there.
        api = await client.post("/api/v1/staff/tokens", json={"email": "x@example.com", "password": "nope"},
                                headers={"origin": "https://evil.example"})
        assert api.status_code == 401
