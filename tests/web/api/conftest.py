"""An API client on the real app, and keys of both tenants: full, read-only, revoked, expired."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import update

from backoffice.platform import clock
from backoffice.platform.audit.service import Actor
from backoffice.tenants.apikeys.models import ApiKey
from backoffice.tenants.apikeys.service import ALL_SCOPES, create_api_key, revoke_api_key
from backoffice.web.app import create_app

ADMIN = Actor(type="tenant_user", label="admin@example")


@dataclass
class Keys:
    a: str
    b: str
    a_read: str  # every resource, read only
    revoked: str
    expired: str


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def make_key(database, tenant_id, scopes=ALL_SCOPES, **kwargs) -> str:
    async with database.tenant(tenant_id) as session:
        return (await create_api_key(session, name="test", scopes=list(scopes), acting=ADMIN, **kwargs)).secret


@pytest.fixture
async def api_keys(database, tenants) -> Keys:
    revoked = await make_key(database, tenants.a.id)
    expired = await make_key(database, tenants.a.id, expires_days=1)
    async with database.tenant(tenants.a.id) as session:
        await session.execute(update(ApiKey).where(ApiKey.expires_at.is_not(None))
                              .values(expires_at=clock.now() - timedelta(seconds=1)))
    async with database.system() as session:
        from backoffice.tenants.apikeys.service import find_by_secret
        revoked_id = (await find_by_secret(session, revoked)).id
    async with database.tenant(tenants.a.id) as session:
        await revoke_api_key(session, revoked_id, acting=ADMIN)
    return Keys(
        a=await make_key(database, tenants.a.id),
        b=await make_key(database, tenants.b.id),
        a_read=await make_key(database, tenants.a.id, scopes=[s for s in ALL_SCOPES if s.endswith(":read")]),
        revoked=revoked, expired=expired,
    )


@pytest.fixture
async def client(database) -> AsyncTestClient:
    async with AsyncTestClient(app=create_app(database.settings)) as test_client:
        yield test_client


def event_data(n: int = 1) -> dict:
    return {"charge": {"external_id": f"ch-{n}", "amount_cents": 9900, "due_date": "2026-05-10"},
            "payment": {"amount_cents": 9900, "paid_at": "2026-05-01T12:00:00Z"}}


async def make_objects(database, tenant, api_key_secret: str, only_key: bool = False) -> dict[str, object]:
    """One object of every API resource in the tenant, keyed by the path parameter that names it."""
    from datetime import date

    from backoffice.tenants.apikeys.service import find_by_secret
    from backoffice.tenants.billing.models import Charge, Contract
    from backoffice.tenants.events.intake import ingest
    from backoffice.tenants.notifications.models import Notification
    from backoffice.tenants.routines.engine import start_run
    from backoffice.tenants.tasks.models import Task
    from backoffice.tenants.webhooks import service as webhooks

    if only_key:
        async with database.system() as session:
            return {"key_id": (await find_by_secret(session, api_key_secret)).id}
    customer_id = tenant.customer_ids[0]
    async with database.tenant(tenant.id) as session:
        event = await ingest(session, tenant.id, {
            "type": "payment.cleared", "source": "api", "external_id": f"evt-{tenant.slug}",
            "customer": {"tax_id": "529.982.247-25"},
            "data": event_data()})
        contract = Contract(customer_id=customer_id, plan_code="pro", plan_name="Pro", price_cents=9900,
                            source="api", external_id=f"ct-{tenant.slug}")
        charge = Charge(customer_id=customer_id, amount_cents=9900, due_date=date(2026, 5, 10), source="api",
                        external_id=f"ch-{tenant.slug}")
        notification = Notification(effect_key=f"n-{tenant.slug}", recipient_id=tenant.admin_id,
                                    kind="customer.started", title="Started", body="Started", customer_id=customer_id)
        task = Task(effect_key=f"t-{tenant.slug}", assignee_id=tenant.admin_id, kind="onboarding", title="Onboard",
                    checklist=[{"item": "Call", "done": False}], customer_id=customer_id)
        session.add_all([contract, charge, notification, task])
        await session.flush()
        hook, _ = await webhooks.create_endpoint(
            session, url="http://127.0.0.1:9/hook", acting=ADMIN,
            settings=database.settings.model_copy(update={"allow_private_targets": True}))
        delivery = await webhooks.send_test(session, hook.id, acting=ADMIN)
        run = await start_run(session, "dunning_sweep", period="2026-05-10", actor=ADMIN)
    async with database.system() as session:
        key = await find_by_secret(session, api_key_secret)
    return {"customer_id": customer_id, "event_id": event.event_id, "contract_id": contract.id,
            "charge_id": charge.id, "notification_id": notification.id, "task_id": task.id, "key_id": key.id,
            "endpoint_id": hook.id, "delivery_id": delivery.id, "run_id": run.id}
