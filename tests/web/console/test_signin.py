"""Signing in to the staff console: password then TOTP, enrolment at the first sign-in, recovery codes, no
replay, throttling, CSRF, a session of its own that ends at sign-out and when the member is deactivated."""

from __future__ import annotations

import re

import pyotp
from sqlalchemy import select, update

from backoffice.platform.audit.models import AuditEntry
from backoffice.tenants.staff.models import Staff
from backoffice.tenants.staff.second_factor import StaffRecoveryCode, StaffSecondFactor
from tests.web.console.conftest import PASSWORD, ConsoleBrowser, Totp, csrf_of, make_member


async def _actions(database, email: str) -> list[str]:
    async with database.system() as session:
        rows = await session.execute(select(AuditEntry.action, AuditEntry.actor_label, AuditEntry.detail)
                                     .order_by(AuditEntry.occurred_at))
        return [row.action for row in rows if email in row.actor_label or email == (row.detail or {}).get("email")]


async def _password(browser: ConsoleBrowser, email: str, password: str = PASSWORD):
    return await browser.post_form("/staff/login", "/staff/login", {"email": email, "password": password})


async def test_first_sign_in_enrols_totp_with_a_qr_code_and_shows_recovery_codes_once(database, tenants, console):
    member = await make_member(database, email="nova@provider.example", name="Nova", role="provider_operator",
                               enrol=False)
    browser = ConsoleBrowser(console)
    assert (await browser.get("/staff/")).headers["location"] == "/staff/login?next=/staff"
    first = await _password(browser, member.email)
    assert first.status_code == 303 and first.headers["location"] == "/staff/login/enrol"
    # The password alone opens nothing.
    assert (await browser.get("/staff/")).status_code == 303
    enrol = await browser.get("/staff/login/enrol")
    assert enrol.status_code == 200
    assert "<svg" in enrol.text and "<script" not in enrol.text.split("<main")[1].split("</main>")[0]
    secret = re.search(r'id="totp-secret"[^>]*>([A-Z2-7 ]+)<', enrol.text).group(1).replace(" ", "")
    # Reloading shows the same secret (the one the phone scanned).
    assert secret in (await browser.get("/staff/login/enrol")).text.replace(" ", "")
    totp = Totp(secret)
    wrong = await browser.post_form("/staff/login/enrol", "/staff/login/enrol", {"code": "000000"})
    assert wrong.status_code == 400 and 'aria-invalid="true"' in wrong.text
    done = await browser.post_form("/staff/login/enrol", "/staff/login/enrol", {"code": totp.code()})
    assert done.status_code == 200
    codes = re.findall(r"<li><code>([0-9a-f-]+)</code></li>", done.text)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert (await browser.get("/staff/")).status_code == 200
    async with database.system() as session:
        factor = await session.get(StaffSecondFactor, member.id)
        stored = list((await session.execute(select(StaffRecoveryCode.code_hash)
                                             .where(StaffRecoveryCode.staff_id == member.id))).scalars())
    assert secret not in factor.secret_encrypted and len(stored) == 10
    assert not any(code in hashed for code in codes for hashed in stored)
    assert {"staff.totp_enrolment_failed", "staff.totp_enrolled", "staff.signed_in"} <= set(
        await _actions(database, member.email))


async def test_a_wrong_or_replayed_code_is_refused_and_audited(database, staff_members, console):
    member = staff_members.operator
    browser = ConsoleBrowser(console)
    assert (await _password(browser, member.email)).headers["location"] == "/staff/login/code"
    wrong = await browser.post_form("/staff/login/code", "/staff/login/code", {"code": "123456"})
    assert wrong.status_code == 400
    good = await browser.post_form("/staff/login/code", "/staff/login/code", {"code": member.totp.code()})
    assert good.status_code == 303 and good.headers["location"] == "/staff/"
    # Sign out, then try the very same code again: it was used, so it is refused.
    await browser.post_form("/staff/", "/staff/logout", {})
    assert (await browser.get("/staff/")).status_code == 303
    await _password(browser, member.email)
    replay = await browser.post_form("/staff/login/code", "/staff/login/code", {"code": member.totp.stale()})
    assert replay.status_code == 400
    assert (await browser.get("/staff/")).status_code == 303
    actions = await _actions(database, member.email)
    assert actions.count("staff.sign_in_failed") == 2 and actions.count("staff.signed_in") == 1


async def test_a_recovery_code_works_once(database, tenants, console):
    member = await make_member(database, email="rui@provider.example", name="Rui", role="provider_admin",
                               enrol=False)
    browser = ConsoleBrowser(console)
    await _password(browser, member.email)
    page = await browser.get("/staff/login/enrol")
    secret = re.search(r'id="totp-secret"[^>]*>([A-Z2-7 ]+)<', page.text).group(1).replace(" ", "")
    done = await browser.post_form("/staff/login/enrol", "/staff/login/enrol", {"code": Totp(secret).code()})
    code = re.findall(r"<li><code>([0-9a-f-]+)</code></li>", done.text)[3]
    await browser.post_form("/staff/", "/staff/logout", {})
    await _password(browser, member.email)
    used = await browser.post_form("/staff/login/code", "/staff/login/code", {"code": code.upper()})
    assert used.status_code == 303 and (await browser.get("/staff/")).status_code == 200
    await browser.post_form("/staff/", "/staff/logout", {})
    await _password(browser, member.email)
    again = await browser.post_form("/staff/login/code", "/staff/login/code", {"code": code})
    assert again.status_code == 400


async def test_wrong_passwords_are_throttled_per_account(database, staff_members, console):
    browser = ConsoleBrowser(console)
    token = csrf_of((await browser.get("/staff/login")).text)
    statuses = []
    for _ in range(11):
        answer = await browser.post_form("/staff/login", "/staff/login",
                                         {"email": staff_members.admin.email, "password": "not-it"}, token=token)
        statuses.append(answer.status_code)
    assert statuses[:10] == [400] * 10 and statuses[10] == 429
    # Even the right password waits now: the account's budget is spent.
    blocked = await _password(browser, staff_members.admin.email)
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
    assert "staff.sign_in_failed" in await _actions(database, staff_members.admin.email)


async def test_second_factor_guesses_are_throttled(database, staff_members, console):
    browser = ConsoleBrowser(console)
    await _password(browser, staff_members.operator.email)
    token = csrf_of((await browser.get("/staff/login/code")).text)
    statuses = [(await browser.post_form("/staff/login/code", "/staff/login/code", {"code": f"{n:06d}"},
                                         token=token)).status_code for n in range(6)]
    assert statuses == [400] * 5 + [429]
    right = await browser.post_form("/staff/login/code", "/staff/login/code",
                                    {"code": staff_members.operator.totp.code()}, token=token)
    assert right.status_code == 429


async def test_forms_need_the_csrf_token_and_our_origin(database, staff_members, console):
    no_token = await console.post("/staff/login", data={"email": staff_members.admin.email, "password": PASSWORD},
                                  headers={"accept": "text/html"})
    assert no_token.status_code == 403
    browser = ConsoleBrowser(console)
    token = csrf_of((await browser.get("/staff/login")).text)
    foreign = await console.post("/staff/login", data={"email": staff_members.admin.email, "password": PASSWORD,
                                                       "_csrf_token": token},
                                 headers={"accept": "text/html", "origin": "https://evil.example"})
    assert foreign.status_code == 403


async def test_the_session_id_changes_at_each_step_and_ends_at_sign_out(database, staff_members, console):
    browser = ConsoleBrowser(console)
    await browser.get("/staff/login")
    await browser.post_form("/staff/login", "/staff/locale", {"locale": "en", "next": "/staff/login"})
    anonymous = console.cookies.get("bo_staff")
    await _password(browser, staff_members.admin.email)
    pending = console.cookies.get("bo_staff")
    await browser.post_form("/staff/login/code", "/staff/login/code", {"code": staff_members.admin.totp.code()})
    signed_in = console.cookies.get("bo_staff")
    assert len({anonymous, pending, signed_in}) == 3
    page = await browser.get("/staff/")
    assert page.status_code == 200 and "Sign out" in page.text  # the language chosen before signing in stays
    await browser.post_form("/staff/", "/staff/logout", {})
    assert (await browser.get("/staff/")).status_code == 303
    # The old cookie, replayed by hand, opens nothing.
    console.cookies.set("bo_staff", signed_in, path="/staff")
    assert (await browser.get("/staff/")).status_code == 303


async def test_a_deactivated_member_is_out_at_the_next_request(database, operator_client):
    assert (await operator_client.get("/staff/")).status_code == 200
    async with database.system() as session:
        await session.execute(update(Staff).where(Staff.email == "otto@provider.example").values(active=False))
    answer = await operator_client.get("/staff/")
    assert answer.status_code == 303 and answer.headers["location"].startswith("/staff/login")
    htmx = await operator_client.get("/staff/overview/live", headers={"hx-request": "true"})
    assert htmx.status_code == 401 and htmx.headers["hx-redirect"].startswith("/staff/login")


async def test_the_console_and_portal_sessions_are_separate(database, tenants, admin_client):
    portal = await admin_client.client.post(
        "/alfa/login", headers={"accept": "text/html"}, follow_redirects=False,
        data={"email": "admin@alfa.example", "password": "correct-horse-battery",
              "_csrf_token": csrf_of((await admin_client.client.get("/alfa/login")).text)})
    assert portal.status_code == 303
    cookies = {cookie.name: cookie for cookie in admin_client.client.cookies.jar}
    assert {"bo_staff", "bo_session"} <= set(cookies) and cookies["bo_staff"].value != cookies["bo_session"].value
    assert cookies["bo_staff"].path == "/staff"
    # Signing out of the console leaves the portal session alone, and the other way round.
    await admin_client.post_form("/staff/", "/staff/logout", {})
    assert (await admin_client.client.get("/alfa/dashboard", follow_redirects=False)).status_code == 200
    assert (await admin_client.get("/staff/")).status_code == 303


def test_totp_codes_from_an_authenticator_app_match():
    # The provisioning URI is what authenticator apps read from the QR code.
    from backoffice.tenants.staff.second_factor import provisioning_uri, qr_svg

    uri = provisioning_uri("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", "ana@provider.example")
    assert pyotp.parse_uri(uri).secret == "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP" and "issuer=Backoffice" in uri
    assert qr_svg(uri).startswith("<svg")


async def test_a_totp_secret_no_key_reads_refuses_the_code_without_failing(database, staff_members, console):
    from cryptography.fernet import Fernet

    async with database.system() as session:  # written under a key that has since been dropped
        await session.execute(update(StaffSecondFactor).where(StaffSecondFactor.staff_id == staff_members.admin.id)
                              .values(secret_encrypted=Fernet(Fernet.generate_key()).encrypt(b"X").decode()))
    browser = ConsoleBrowser(console)
    await _password(browser, staff_members.admin.email)
    answer = await browser.post_form("/staff/login/code", "/staff/login/code", {"code": staff_members.admin.totp.code()})
    assert answer.status_code == 400
