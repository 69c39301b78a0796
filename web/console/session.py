"""The staff console's session: its own cookie and store, apart from every tenant's portal session.

The cookie ``bo_staff`` holds only a random id; the data lives in the ``staff_sessions`` store (Redis when
``BACKOFFICE_REDIS_URL`` is set, files in the embedded mode) under ``staff:<id>``. The id is replaced when
the password is accepted and again when the second factor is (no fixation), and the session is deleted at
sign-out. Every request loads the staff member again: a deactivated member's session ends at their next
request. The portal's session middleware skips ``/staff`` (``web/portal/sessions.py``), and this one runs
only on the console's router, so the two never read each other's cookie. CSRF (token and Origin check)
is the portal's, app-wide.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.middleware.session.server_side import ServerSideSessionConfig
from litestar.response import Redirect
from litestar.stores.base import Store
from litestar.stores.file import FileStore
from litestar.stores.redis import RedisStore

from backoffice.platform.availability import redis_client
from backoffice.platform.audit.service import Actor
from backoffice.platform.db.session import Database
from backoffice.platform.settings import Settings
from backoffice.tenants.staff.models import StaffRole
from backoffice.tenants.staff.second_factor import active_staff
from backoffice.web.portal.sessions import ROTATE, TenantSessionBackend, secure_cookies

STAFF_COOKIE = "bo_staff"
STAFF_STORE = "staff_sessions"
STAFF_SESSION_MAX_AGE = 10 * 3600  # a working day
PENDING_MAX_AGE = 5 * 60  # between the password and the second factor
SCOPE_STAFF = "backoffice.console_staff"

__all__ = ["ROTATE", "StaffUser", "StaffLoginRequired", "provide_staff", "staff_session_config", "staff_store",
           "session_data", "login_redirect"]


@dataclass(frozen=True)
class StaffUser:
    """The signed-in staff member, as the console's handlers get it (dependency ``staff``)."""

    id: uuid.UUID
    email: str
    name: str
    role: StaffRole
    active: bool = True  # always, once loaded: an inactive member never gets this far

    @property
    def is_admin(self) -> bool:
        return self.role == StaffRole.ADMIN

    @property
    def actor(self) -> Actor:
        return Actor(type="staff", label=self.email, id=str(self.id))


class StaffLoginRequired(Exception):
    """No signed-in staff member on this request."""


class StaffSessionBackend(TenantSessionBackend):
    """The portal's backend (id rotation on ``ROTATE``, deletion on clear) under the ``staff:`` key space;
    ``staff`` is a reserved tenant slug, so no portal key can ever be a staff key."""

    def _key(self, connection: ASGIConnection, session_id: str) -> str:
        return f"staff:{session_id}"


class StaffSessionConfig(ServerSideSessionConfig):
    _backend_class = StaffSessionBackend


def staff_session_config(settings: Settings) -> StaffSessionConfig:
    return StaffSessionConfig(key=STAFF_COOKIE, store=STAFF_STORE, max_age=STAFF_SESSION_MAX_AGE, httponly=True,
                              samesite="lax", secure=secure_cookies(settings), path="/staff",
                              renew_on_access=True)


def staff_store(settings: Settings) -> Store:
    if settings.redis_url:
        # The outage-ready client (platform/availability.py), as the portal's: 503 while Redis is away.
        return RedisStore(redis_client(settings.redis_url), namespace="backoffice:staff:sessions",
                          handle_client_shutdown=True)
    return FileStore(settings.data_dir / "staff-sessions", create_directories=True)


def session_data(request: Request) -> dict[str, Any]:
    return dict(request.session) if request.scope.get("session") else {}


async def provide_staff(request: Request, state: State) -> StaffUser:
    """The signed-in, still active staff member; otherwise StaffLoginRequired (a redirect to sign-in)."""
    data = session_data(request)
    try:
        staff_id = uuid.UUID(str(data.get("staff_id")))
    except ValueError:
        raise StaffLoginRequired() from None
    database: Database = state.database
    async with database.system() as session:
        row = await active_staff(session, staff_id)
    if row is None:
        request.clear_session()
        raise StaffLoginRequired()
    staff = StaffUser(row.id, row.email, row.name, row.role)
    request.scope[SCOPE_STAFF] = staff  # type: ignore[literal-required]
    return staff


def login_redirect(request: Request, exc: StaffLoginRequired) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    location = f"/staff/login?next={quote(target, safe='/')}"
    if request.headers.get("hx-request"):  # an htmx poll: have the page go to sign-in, not swap it in
        return Response("", status_code=401, headers={"HX-Redirect": location})
    if "text/html" not in request.headers.get("accept", "") and request.method != "GET":
        return Response({"detail": "Sign in to the staff console"}, status_code=401)
    return Redirect(location, status_code=303)


def safe_next(value: str | None) -> str:
    """Only a console path (never an absolute or scheme-relative URL: no open redirect)."""
    if not value or not value.startswith("/staff") or value.startswith("//") or "\\" in value:
        return "/staff/"
    if value.startswith("/staff/login"):
        return "/staff/"
    return value
