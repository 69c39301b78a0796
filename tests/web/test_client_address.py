"""Who the client is, over a real uvicorn server started with the options every entry point uses
(``web/entry/runtime.py``), from loopback, as a local reverse proxy (or an attacker on the same host) would
connect: ``X-Forwarded-For`` counts only from ``BACKOFFICE_TRUSTED_PROXIES``, and log-ins are throttled by
account as well as by address, so fresh addresses per request buy an attacker nothing."""

from __future__ import annotations

import asyncio
import socket
import threading
from contextlib import asynccontextmanager

import httpx
import pytest
import uvicorn
from sqlalchemy import select

from backoffice.platform.audit.models import AuditEntry
from backoffice.platform.audit.service import Actor
from backoffice.platform.ratelimit import LOG_IN
from backoffice.web.entry.runtime import server_options
from backoffice.tenants.staff.service import create_staff
from backoffice.web.app import create_app
from tests.web.portal.conftest import PASSWORD, Browser, csrf_of

STAFF_PASSWORD = "a-long-enough-password"


@asynccontextmanager
async def served(settings):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = settings.model_copy(update={"host": "127.0.0.1", "port": port, "log_level": "WARNING"})
    server = uvicorn.Server(uvicorn.Config(create_app(settings), lifespan="on", **server_options(settings)))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.05)
        else:
            raise RuntimeError("the server did not start")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 10)


def _trusting(database, proxies: str = ""):
    return database.settings.model_copy(update={"trusted_proxies": proxies})


async def _portal_login(browser: Browser, email: str, address: str, password: str = "wrong-password!"):
    page = await browser.client.get("/alfa/login", headers={**browser.headers, "x-forwarded-for": address})
    return await browser.client.post("/alfa/login", data={"email": email, "password": password,
                                                          "_csrf_token": csrf_of(page.text)},
                                     headers={**browser.headers, "x-forwarded-for": address},
                                     follow_redirects=False)


async def test_forwarded_for_from_loopback_is_ignored_when_no_proxy_is_trusted(database, tenants):
    async with served(_trusting(database)) as client:
        browser = Browser(client)
        # A new account and a new claimed address each time: only the real address (loopback) is left to count.
        answers = [await _portal_login(browser, f"user{i}@alfa.example", f"203.0.113.{i}")
                   for i in range(LOG_IN.per_address + 1)]
        assert [a.status_code for a in answers[:-1]] == [400] * LOG_IN.per_address
        assert answers[-1].status_code == 429
        staff = [await client.post("/api/v1/staff/tokens", json={"email": f"s{i}@provider.example", "password": "x"},
                                   headers={"x-forwarded-for": f"198.51.100.{i}"})
                 for i in range(LOG_IN.per_address + 1)]
        assert [s.status_code for s in staff] == [401] * LOG_IN.per_address + [429]


async def test_forwarded_for_is_honoured_from_a_trusted_proxy(database, tenants):
    async with served(_trusting(database, "127.0.0.1")) as client:
        browser = Browser(client)
        answers = [await _portal_login(browser, f"user{i}@alfa.example", f"203.0.113.{i}")
                   for i in range(LOG_IN.per_address + 1)]
        assert {a.status_code for a in answers} == {400}
        # The client is the nearest address the trusted proxy did not vouch for: what the client itself put
        # first in the header (here 192.0.2.66) is not believed over what the proxy appended.
        ok = await _portal_login(browser, "member@alfa.example", "192.0.2.66, 198.51.100.23", PASSWORD)
        assert ok.status_code == 303
    async with database.system() as session:
        entry = (await session.execute(select(AuditEntry).where(AuditEntry.action == "user.logged_in"))).scalar_one()
    assert entry.detail["address"] == "198.51.100.23"


async def test_failed_log_ins_for_one_account_from_many_addresses_are_throttled_by_account(database, tenants):
    async with database.system() as session:
        await create_staff(session, email="op@provider.example", name="Otto", role="provider_operator",
                           password=STAFF_PASSWORD, acting=Actor.system("tests"))
    async with served(_trusting(database, "127.0.0.1")) as client:
        browser = Browser(client)
        answers = [await _portal_login(browser, "member@alfa.example", f"203.0.113.{i}") for i in range(25)]
        codes = [a.status_code for a in answers]
        assert codes == [400] * LOG_IN.per_account + [429] * (25 - LOG_IN.per_account)
        # Right password, new address: still waits (guessing gained nothing). The answer is the same for an
        # account that does not exist, so the throttle tells nothing about who has one.
        assert (await _portal_login(browser, "member@alfa.example", "203.0.113.200", PASSWORD)).status_code == 429
        ghosts = [await _portal_login(browser, "nobody@alfa.example", f"192.0.2.{i}") for i in range(25)]
        assert [g.status_code for g in ghosts] == codes
        # Another account is not held back.
        assert (await _portal_login(browser, "admin@alfa.example", "203.0.113.201", PASSWORD)).status_code == 303

        staff = [await client.post("/api/v1/staff/tokens", json={"email": "op@provider.example", "password": "x"},
                                   headers={"x-forwarded-for": f"198.51.100.{i}"}) for i in range(25)]
        assert [s.status_code for s in staff] == [401] * LOG_IN.per_account + [429] * (25 - LOG_IN.per_account)
        right = await client.post("/api/v1/staff/tokens", json={"email": "op@provider.example",
                                                                "password": STAFF_PASSWORD},
                                  headers={"x-forwarded-for": "198.51.100.250"})
        assert right.status_code == 429 and int(right.headers["retry-after"]) > 0


async def test_a_burst_of_parallel_guesses_gets_no_more_tries_than_the_limit(database, tenants):
    async with served(_trusting(database, "127.0.0.1")) as client:
        browser = Browser(client)
        token = csrf_of((await browser.get("/alfa/login")).text)

        async def guess(i: int) -> int:
            answer = await client.post("/alfa/login", follow_redirects=False,
                                       data={"email": "member@alfa.example", "password": f"guess-{i}",
                                             "_csrf_token": token},
                                       headers={**browser.headers, "x-forwarded-for": f"203.0.113.{i}"})
            return answer.status_code

        codes = await asyncio.gather(*[guess(i) for i in range(40)])
        assert sorted(codes) == [400] * LOG_IN.per_account + [429] * (40 - LOG_IN.per_account)


@pytest.mark.parametrize("value", ["10.0.0.0/33", "proxy.internal", "*"])
def test_a_bad_trusted_proxy_setting_stops_start_up_naming_the_variable(value, monkeypatch):
    from backoffice.platform.settings import SettingsError, load_settings

    monkeypatch.setenv("BACKOFFICE_TRUSTED_PROXIES", f"127.0.0.1,{value}")
    with pytest.raises(SettingsError, match="BACKOFFICE_TRUSTED_PROXIES"):
        load_settings()
    monkeypatch.setenv("BACKOFFICE_TRUSTED_PROXIES", " 10.0.0.0/8, ::1 ,")
    assert load_settings().trusted_proxy_networks == ["10.0.0.0/8", "::1/128"]
