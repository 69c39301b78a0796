"""The embedded demo's users log in to their portals with the printed demo password, and only there."""

from __future__ import annotations

from backoffice.web.entry.demo import DEMO_PASSWORD
from tests.demo_support import seed_demo_for_test as seed_demo
from tests.web.portal.conftest import Browser


async def test_demo_users_log_in_to_their_own_portal(database, browser: Browser):
    logins = await seed_demo(database)
    portal_logins = [login for login in logins if login.where != "staff"]
    assert portal_logins
    for login in portal_logins:
        assert (await browser.login(login.where.rstrip("/"), login.email, DEMO_PASSWORD)).status_code == 303
        assert (await browser.get(f"{login.where}dashboard")).status_code == 200
    assert (await browser.login("/vitta", "ana@aurora.example", DEMO_PASSWORD)).status_code == 400
