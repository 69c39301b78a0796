"""The embedded demo's mailbox, ``/<slug>/demo/mailbox``: the e-mails and platform commands this company's
back office would have sent, as recorded instead (no connector in the demo), so a password reset or an
invitation can be followed in the demo. Only when BACKOFFICE_ENVIRONMENT is demo; a 404 everywhere else."""

from __future__ import annotations

from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.exceptions import NotFoundException
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.tenants.effects.mailbox import recorded_messages
from backoffice.tenants.registry.models import Tenant
from backoffice.web.portal.render import page


@get("/demo/mailbox", name="portal:demo_mailbox")
async def demo_mailbox(request: Request, tenant: Tenant, db: AsyncSession, state: State) -> Response:
    if state.settings.environment != "demo":
        raise NotFoundException()
    return page(request, tenant, "portal/demo_mailbox.html", messages=await recorded_messages(db))


DEMO_HANDLERS = [demo_mailbox]
