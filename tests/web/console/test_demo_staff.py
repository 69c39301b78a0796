"""The demo's staff logins open the console: the password, then TOTP set up at the first sign-in, then the
overview of the companies each serves (the admin: both; the operator: Aurora, where the demo mobilises them)."""

from __future__ import annotations

import re

from backoffice.web.entry.demo import DEMO_PASSWORD
from tests.demo_support import seed_demo_for_test as seed_demo
from tests.web.console.conftest import ConsoleBrowser, Totp
from tests.web.console.test_overview import _cells


async def test_each_demo_staff_login_enrols_and_sees_its_companies(database):
    logins = [login for login in await seed_demo(database) if login.where == "staff"]
    assert {login.role for login in logins} == {"provider_admin", "provider_operator"}
    from backoffice.web.app import create_app
    from litestar.testing import AsyncTestClient

    for login in logins:
        async with AsyncTestClient(app=create_app(database.settings)) as client:
            browser = ConsoleBrowser(client)
            first = await browser.post_form("/staff/login", "/staff/login",
                                            {"email": login.email, "password": DEMO_PASSWORD})
            assert first.headers["location"] == "/staff/login/enrol"
            page = (await browser.get("/staff/login/enrol")).text
            secret = re.search(r'id="totp-secret"[^>]*>([A-Z2-7 ]+)<', page).group(1).replace(" ", "")
            done = await browser.post_form("/staff/login/enrol", "/staff/login/enrol", {"code": Totp(secret).code()})
            assert done.status_code == 200
            overview = (await browser.get("/staff/")).text
            assert "Aurora Software" in overview
            assert ("Vitta Academias" in overview) == (login.role == "provider_admin")
            # The seeded month gives the overview real numbers: Aurora's unmatched payment and customer in
            # grace, and for the admin Vitta's refused block (a dead letter) and its blocked customer.
            aurora = _cells(overview, "aurora")
            assert (aurora["unmatched"], aurora["grace"], aurora["overdue"]) == ("1", "1", "R$ 199,90")
            if login.role == "provider_admin":
                vitta = _cells(overview, "vitta")
                assert (vitta["unmatched"], vitta["blocked"], vitta["overdue"]) == ("1", "1", "R$ 129,90")
                # The refused block; on PostgreSQL (not the embedded mode) e-mails without a connector too.
                assert vitta["dead"] == "1" if database.settings.embedded else int(vitta["dead"]) >= 1
