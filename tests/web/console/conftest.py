"""Console test helpers, for every console test: an app per test, staff members with TOTP enrolled, and
browser-like clients already signed in to the console through its real sign-in (password, then TOTP).

- ``console``: an AsyncTestClient on a fresh app; ``ConsoleBrowser(console)`` keeps cookies and fills CSRF;
- ``staff_members``: a provider admin and an operator (assigned to tenant A only), each with a TOTP secret;
- ``admin_client`` / ``operator_client``: ConsoleBrowser instances signed in as them (separate apps'
  clients, so their cookies never mix), with ``.tenants`` (the TwoTenants fixture) at hand;
- ``Totp``: codes for a secret that are always for a later step than the last one used (a code is
  accepted once: see tenants/staff/second_factor.py).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pyotp
import pytest
from litestar.testing import AsyncTestClient

from backoffice.platform.audit.service import Actor
from backoffice.tenants.staff import second_factor
from backoffice.tenants.staff.service import assign_staff, create_staff
from backoffice.tenants.registry.models import Tenant
from backoffice.web.app import create_app

PASSWORD = "correct-horse-battery-staple"
HTML = {"accept": "text/html"}
CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "the page has no CSRF field"
    return match.group(1)


class Totp:
    """TOTP codes for one secret, each for a later 30-second step than the previous one (the console
    refuses a step it has already accepted); waits for the next step when the window is used up."""

    _last: dict[str, int] = {}

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.totp = pyotp.TOTP(secret)

    def code(self) -> str:
        while True:
            now = self.totp.timecode(_now())
            step = max(now - 1, Totp._last.get(self.secret, -1) + 1)
            if step <= now + 1:
                Totp._last[self.secret] = step
                return self.totp.generate_otp(step)
            time.sleep(1)

    def stale(self) -> str:
        """The code of the last step already used: the console must refuse it (replay)."""
        return self.totp.generate_otp(Totp._last[self.secret])


def _now():
    from backoffice.platform import clock

    return clock.now()


@dataclass
class Member:
    id: uuid.UUID
    email: str
    totp: Totp


@dataclass
class StaffMembers:
    admin: Member
    operator: Member


async def make_member(database, *, email: str, name: str, role: str, enrol: bool = True) -> Member:
    secret = pyotp.random_base32()
    totp = Totp(secret)
    async with database.system() as session:
        staff = await create_staff(session, email=email, name=name, role=role, password=PASSWORD,
                                   acting=Actor.system("tests"))
        if enrol:
            await second_factor.enrol_totp(session, staff=staff, secret=secret, code=totp.code(),
                                           settings=database.settings, address="tests")
    return Member(staff.id, email, totp)


@pytest.fixture
async def staff_members(database, tenants) -> StaffMembers:
    admin = await make_member(database, email="ana@provider.example", name="Ana Admin", role="provider_admin")
    operator = await make_member(database, email="otto@provider.example", name="Otto Operador",
                                 role="provider_operator")
    async with database.system() as session:
        from sqlalchemy import select

        from backoffice.tenants.staff.models import Staff

        staff = (await session.execute(select(Staff).where(Staff.id == operator.id))).scalar_one()
        await assign_staff(session, staff=staff, tenant=await session.get(Tenant, tenants.a.id),
                           acting=Actor.system("tests"), reason="the console tests serve tenant A")
    return StaffMembers(admin, operator)


class ConsoleBrowser:
    """Keeps cookies, sends ``Accept: text/html`` and fills in the page's CSRF token, like a browser."""

    def __init__(self, client: AsyncTestClient) -> None:
        self.client = client
        self.headers = dict(HTML)
        self.tenants = None

    async def get(self, path: str, **kwargs):
        kwargs.setdefault("follow_redirects", False)
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return await self.client.get(path, headers=headers, **kwargs)

    async def post_form(self, page_path: str, action: str, data: dict[str, str], *, token: str | None = None):
        if token is None:
            token = csrf_of((await self.get(page_path)).text)
        return await self.client.post(action, data={**data, "_csrf_token": token}, headers=self.headers,
                                      follow_redirects=False)

    async def sign_in(self, member: Member, password: str = PASSWORD):
        """Password, then a fresh TOTP code; returns the last response (303 to the console when it worked)."""
        first = await self.post_form("/staff/login", "/staff/login", {"email": member.email, "password": password})
        if first.status_code != 303 or first.headers["location"] != "/staff/login/code":
            return first
        return await self.post_form("/staff/login/code", "/staff/login/code", {"code": member.totp.code()})


@pytest.fixture
async def console(database) -> AsyncIterator[AsyncTestClient]:
    async with AsyncTestClient(app=create_app(database.settings)) as client:
        yield client


async def _signed_in(database, tenants, member: Member) -> AsyncIterator[ConsoleBrowser]:
    async with AsyncTestClient(app=create_app(database.settings)) as client:
        browser = ConsoleBrowser(client)
        answer = await browser.sign_in(member)
        assert answer.status_code == 303 and answer.headers["location"] == "/staff/", answer.text
        browser.tenants = tenants
        yield browser


@pytest.fixture
async def admin_client(database, tenants, staff_members) -> AsyncIterator[ConsoleBrowser]:
    async for browser in _signed_in(database, tenants, staff_members.admin):
        yield browser


@pytest.fixture
async def operator_client(database, tenants, staff_members) -> AsyncIterator[ConsoleBrowser]:
    """Signed in as the operator assigned to tenant A (tenants.a) only."""
    async for browser in _signed_in(database, tenants, staff_members.operator):
        yield browser
