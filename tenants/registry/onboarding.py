"""Where a client company's onboarding stands: the console's guided flow saves each step as it goes,
so a staff member who leaves resumes at the first step not yet done. A company the flow created has
"tenant" saved; one created elsewhere (CLI, staff API, demo) has nothing saved and is not listed as being
onboarded, though the flow's steps remain open to it."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform.audit.service import Actor, record
from backoffice.platform.errors import FieldError, ValidationFailed
from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.registry.settings import get_tenant

# In the order the flow walks them; "tenant" is done by creating the company.
STEPS = ("tenant", "branding", "host", "connectors", "policy", "admin")


def steps_done(tenant: Tenant) -> list[str]:
    done = set(tenant.onboarding_steps or ()) | {"tenant"}
    return [step for step in STEPS if step in done]


def next_step(tenant: Tenant) -> str | None:
    """The first step not done yet; None once every step is."""
    done = set(steps_done(tenant))
    return next((step for step in STEPS if step not in done), None)


async def complete_step(session: AsyncSession, tenant_id: uuid.UUID, step: str, *, acting: Actor,
                        skipped: bool = False) -> Tenant:
    """Mark a step done (or deliberately skipped: a company with no custom host, say); audited once."""
    if step not in STEPS:
        raise ValidationFailed(FieldError("step", f"expected one of {', '.join(STEPS)}"))
    tenant = await get_tenant(session, tenant_id)
    if step in (tenant.onboarding_steps or ()):
        return tenant
    tenant.onboarding_steps = [s for s in STEPS if s in {*steps_done(tenant), step}]
    await session.flush()
    await record(session, actor=acting, action="tenant.onboarding_step_done", target_type="tenant",
                 target_id=tenant.id, tenant_id=tenant.id,
                 detail={"step": step, "skipped": skipped, "remaining": [s for s in STEPS
                                                                         if s not in tenant.onboarding_steps]})
    return tenant
