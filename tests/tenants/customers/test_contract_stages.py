"""The customer's stage summarises its contracts' stages; migration 0020 gives existing late-payment cases
the contract of their charge and existing contracts the stage their open cases give them."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import select

from backoffice.platform.db.migrate import alembic_config, downgrade, upgrade
from backoffice.tenants.billing.models import Charge, ChargeStatus, Contract, ContractStatus
from backoffice.tenants.customers.lifecycle import stage_from, summarise
from backoffice.tenants.customers.models import Lifecycle
from backoffice.tenants.dunning.models import CaseStatus, DunningCase

ACTIVE, GRACE, BLOCKED = Lifecycle.ACTIVE, Lifecycle.IN_GRACE, Lifecycle.BLOCKED


def _contracts(*stages: Lifecycle, canceled: int = 0) -> list[Contract]:
    live = [Contract(status=ContractStatus.ACTIVE, lifecycle=stage) for stage in stages]
    return live + [Contract(status=ContractStatus.CANCELED, lifecycle=BLOCKED) for _ in range(canceled)]


def test_the_customer_is_blocked_only_when_every_active_contract_is():
    assert summarise(_contracts(BLOCKED, BLOCKED, canceled=1)) == BLOCKED
    assert summarise(_contracts(BLOCKED, ACTIVE)) == GRACE
    assert summarise(_contracts(GRACE, ACTIVE)) == GRACE
    assert summarise(_contracts(ACTIVE, ACTIVE, canceled=2)) == ACTIVE
    # No active contract: the customer-wide cases decide.
    assert summarise(_contracts(canceled=1), BLOCKED) == BLOCKED and summarise([], ACTIVE) == ACTIVE
    assert stage_from([]) == ACTIVE and stage_from([False]) == GRACE and stage_from([False, True]) == BLOCKED


async def test_migration_0020_derives_contracts_of_existing_cases(backend, database, tenants):
    if backend.name != "sqlite":
        pytest.skip("downgrades a copy of the schema: the SQLite copy is the test's own")
    a = tenants.a
    customer_id = a.customer_ids[0]
    now = datetime(2026, 11, 2, tzinfo=UTC)
    async with database.tenant(a.id) as session:
        erp = Contract(customer_id=customer_id, plan_code="erp", plan_name="ERP", price_cents=100,
                       status=ContractStatus.ACTIVE, source="asaas", external_id="sub_1")
        pdv = Contract(customer_id=customer_id, plan_code="pdv", plan_name="PDV", price_cents=100,
                       status=ContractStatus.ACTIVE, source="asaas", external_id="sub_2")
        session.add_all([erp, pdv])
        await session.flush()
        of_erp = Charge(customer_id=customer_id, contract_id=erp.id, amount_cents=100, due_date=date(2026, 11, 1),
                        status=ChargeStatus.OVERDUE, source="asaas", external_id="pay_1")
        loose = Charge(customer_id=customer_id, amount_cents=100, due_date=date(2026, 11, 1),
                       status=ChargeStatus.OVERDUE, source="asaas", external_id="pay_2")
        session.add_all([of_erp, loose])
        await session.flush()
        session.add_all([
            DunningCase(customer_id=customer_id, charge_id=of_erp.id, policy_version=1, status=CaseStatus.BLOCKED,
                        deadline_at=now, opened_at=now),
            DunningCase(customer_id=customer_id, charge_id=loose.id, policy_version=1, status=CaseStatus.GRACE,
                        deadline_at=now, opened_at=now)])
        ids = {"erp": erp.id, "pdv": pdv.id, "of_erp": of_erp.id, "loose": loose.id}
    settings = database.settings
    previous = ScriptDirectory.from_config(alembic_config(settings)).get_revision("0020").down_revision
    await asyncio.to_thread(downgrade, settings, previous)
    await asyncio.to_thread(upgrade, settings)
    async with database.tenant(a.id) as session:
        cases = {c.charge_id: c for c in (await session.execute(select(DunningCase))).scalars()}
        stages = {c.id: c.lifecycle for c in (await session.execute(select(Contract))).scalars()}
    assert cases[ids["of_erp"]].contract_id == ids["erp"]
    assert cases[ids["loose"]].contract_id is None  # no contract to derive: customer-wide
    # ERP is blocked by its own case; the customer-wide case in grace reaches PDV too.
    assert stages == {ids["erp"]: BLOCKED, ids["pdv"]: GRACE}
