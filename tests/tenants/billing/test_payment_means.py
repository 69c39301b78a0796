"""How the customer pays (issue 17, item 4), on PostgreSQL against the stateful Asaas stand-in: the monthly
billing run creates the charge with the tenant's fine and interest, records its billing type and caches the
Pix copia-e-cola, its QR code, the boleto's linha digitável and PDF; the late-payment e-mail to the end
customer and the portal's customer page show them (pt-BR); a fine or interest above the legal cap is a 422
naming the field; another tenant sees none of it."""

from __future__ import annotations

import uuid

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from backoffice.platform.audit.service import Actor
from backoffice.platform.errors import ValidationFailed
from backoffice.tenants.billing.models import Charge, ChargeStatus, Contract, ContractStatus
from backoffice.tenants.customers.models import Lifecycle
from backoffice.tenants.effects.models import Channel
from backoffice.tenants.policies.service import update_policy
from backoffice.tenants.routines import engine
from backoffice.tenants.routines.models import ItemStatus, RunItem
from backoffice.web.app import create_app
from tests.connectors.conftest import connector_settings
from tests.providers.asaas import QR_PNG, FakeAsaas, boleto_line, connect, gateway_options, serving
from tests.tenants.conftest import new_customer
from tests.web.api.test_staff import _token, staff  # noqa: F401 (the fixture)
from tests.web.portal.conftest import Browser

pytestmark = pytest.mark.postgres_only
KEY_A, KEY_B = "$aact_means_alfa", "$aact_means_beta"
STAFF = Actor(type="staff", label="staff:ana@provider.test", id="ana")


async def contract_for(database, tenant_id, customer_id, *, price=24990, day=10) -> uuid.UUID:
    async with database.tenant(tenant_id) as session:
        contract = Contract(customer_id=customer_id, plan_code="pro", plan_name="Plano Pro", price_cents=price,
                            billing_day=day, status=ContractStatus.ACTIVE)
        session.add(contract)
        await session.flush()
        return contract.id


async def test_a_billed_charge_carries_fine_interest_and_how_to_pay_to_the_email_and_the_portal(spine):
    a, b = spine.tenants.a, spine.tenants.b
    await spine.set_policy(a.id, late_fine_percent=2, late_interest_percent_month="1")
    customer_id = await new_customer(spine.database, a.id, a.member_id, name="Oficina Sol", tax_id="390.533.447-05",
                                     email="contas@oficinasol.example", lifecycle=Lifecycle.ACTIVE)
    await contract_for(spine.database, a.id, customer_id)
    with serving(FakeAsaas()) as asaas, gateway_options(spine.database):
        app = create_app(connector_settings(spine.database))
        async with AsyncTestClient(app=app) as web:
            instance_id = await connect(spine.database, a.id, asaas, KEY_A)
            await connect(spine.database, b.id, asaas, KEY_B)
            async with spine.database.provider(a.id) as session:
                await engine.start_run(session, "billing", period="2026-11", actor=STAFF)
            await spine.settle()

            [sent] = asaas.calls("POST", "/v3/payments", token=KEY_A)
            assert sent.body["fine"] == {"value": 2.0, "type": "PERCENTAGE"} and sent.body["interest"] == {"value": 1.0}
            assert sent.body["billingType"] == "UNDEFINED"
            async with spine.database.tenant(a.id) as session:
                [charge] = (await session.execute(select(Charge))).scalars().all()
            pay = charge.external_id
            assert charge.billing_type == "UNDEFINED" and charge.pix_qr_png == QR_PNG
            assert charge.pix_payload.startswith("000201") and pay.removeprefix("pay_") in charge.pix_payload
            assert charge.boleto_line == boleto_line(pay)
            assert charge.boleto_url == f"{asaas.url}/b/pdf/{pay.removeprefix('pay_')}"
            assert len(asaas.calls("GET", f"/v3/payments/{pay}/pixQrCode")) == 1  # cached, not asked again

            # The charge goes overdue at Asaas: the notice to the end customer says how to pay it.
            asaas.mark_overdue(KEY_A, pay)
            response = await web.post(f"/hooks/{a.slug}/{instance_id}", json=asaas.hook(KEY_A, "PAYMENT_OVERDUE", pay),
                                      headers={"asaas-access-token": f"hook-{KEY_A}"})
            assert response.status_code == 200, response.text
            await spine.settle()
            [notice] = [m for m in spine.sent(Channel.EMAIL, a.id) if m.payload.get("to") == "contas@oficinasol.example"]
            text = notice.payload["text"]
            assert "Pix copia e cola" in text and charge.pix_payload in text
            assert f"Linha digitável do boleto: {charge.boleto_line}" in text and charge.boleto_url in text
            async with spine.database.tenant(a.id) as session:
                assert (await session.get(Charge, (a.id, charge.id))).status == ChargeStatus.OVERDUE

            # The portal's customer page, in pt-BR: the means of the open charge; tenant B's member sees nothing.
            browser = Browser(web)
            assert (await browser.login("/alfa", "member@alfa.example")).status_code == 303
            page = await browser.get(f"/alfa/customers/{customer_id}")
            assert page.status_code == 200
            for expected in ("Como pagar", "Pix copia e cola", charge.pix_payload, f"data:image/png;base64,{QR_PNG}",
                             "Linha digitável do boleto", charge.boleto_line, "Boleto em PDF",
                             "À escolha do cliente (boleto, Pix ou cartão)"):
                assert expected in page.text, expected
            assert "How to pay" not in page.text
            other = Browser(web)
            assert (await other.login("/beta", "member@beta.example")).status_code == 303
            foreign = await other.get(f"/beta/customers/{customer_id}")
            assert foreign.status_code == 404 and charge.pix_payload not in foreign.text
    assert asaas.calls(token=KEY_B) == []


async def test_a_fine_or_interest_above_the_legal_cap_is_refused_naming_the_field(database, tenants, staff):  # noqa: F811
    async with database.provider(tenants.a.id) as session:
        with pytest.raises(ValidationFailed) as refused:
            await update_policy(session, changes={"late_fine_percent": 2.5, "late_interest_percent_month": 1.2},
                                acting=STAFF, reason="test")
    assert sorted(e.field for e in refused.value.errors) == ["late_fine_percent", "late_interest_percent_month"]
    async with AsyncTestClient(app=create_app(database.settings)) as client:
        admin = await _token(client, "admin@provider.example")
        path = f"/api/v1/staff/tenants/{tenants.a.id}/policy"
        response = await client.patch(path, headers=admin, json={"changes": {"late_fine_percent": 10}, "reason": "x"})
        assert response.status_code == 422, response.text
        [error] = response.json()["errors"]
        assert error["field"] == "late_fine_percent" and "2%" in error["message"]
        saved = await client.patch(path, headers=admin, json={"changes": {"late_fine_percent": 1.5,
                                                                          "late_interest_percent_month": 0.33},
                                                              "reason": "multa e juros do contrato"})
        assert saved.status_code == 200, saved.text
        assert (saved.json()["config"]["late_fine_percent"], saved.json()["config"]["late_interest_percent_month"]) \
            == (1.5, 0.33)


async def test_an_account_without_a_pix_key_still_bills_with_the_boleto_and_says_why_there_is_no_pix(spine):
    a = spine.tenants.a
    customer_id = await new_customer(spine.database, a.id, a.member_id, name="Bazar Lua", tax_id="111.444.777-35",
                                     lifecycle=Lifecycle.ACTIVE)
    await contract_for(spine.database, a.id, customer_id, price=9900, day=15)
    with serving(FakeAsaas()) as asaas, gateway_options(spine.database):
        await connect(spine.database, a.id, asaas, KEY_A)
        asaas.account(KEY_A).pix_key = False
        async with spine.database.provider(a.id) as session:
            run_id = (await engine.start_run(session, "billing", period="2026-11", actor=STAFF)).id
        await spine.settle()
    async with spine.database.tenant(a.id) as session:
        [charge] = (await session.execute(select(Charge))).scalars().all()
        [item] = (await session.execute(select(RunItem).where(RunItem.run_id == run_id))).scalars().all()
    assert (charge.billing_type, charge.pix_payload, charge.pix_qr_png) == ("UNDEFINED", None, None)
    assert charge.boleto_line == boleto_line(charge.external_id) and charge.boleto_url
    assert item.status == ItemStatus.DONE and "Não há chave Pix cadastrada" in item.result["problem"]
    assert "fine" not in asaas.calls("POST", "/v3/payments")[0].body  # the policy's default: none


async def test_a_charge_made_at_asaas_outside_the_platform_is_chased_with_its_pix_code_and_boleto_line(spine):
    """An Asaas subscription's payment (created at Asaas, told by webhooks): its overdue notice says how to pay."""
    a = spine.tenants.a
    with serving(FakeAsaas()) as asaas, gateway_options(spine.database):
        cus = asaas.add_customer(KEY_A, name="Studio Norte", cpf_cnpj="04252011000110")
        await new_customer(spine.database, a.id, a.member_id, name="Studio Norte", tax_id="04.252.011/0001-10",
                           email="adm@studionorte.example", lifecycle=Lifecycle.ACTIVE, external={"asaas": cus["id"]})
        pay = asaas.plant(KEY_A, customer=cus["id"], value="89.90", status="PENDING", due_date="2026-10-30",
                          subscription="sub_000000000777")["id"]
        asaas.account(KEY_A).payments[pay].update(billingType="BOLETO", bankSlipUrl=f"{asaas.url}/b/pdf/x")
        app = create_app(connector_settings(spine.database))
        async with AsyncTestClient(app=app) as web:
            instance_id = await connect(spine.database, a.id, asaas, KEY_A)
            for event in ("PAYMENT_CREATED", "PAYMENT_OVERDUE"):
                if event == "PAYMENT_OVERDUE":
                    asaas.mark_overdue(KEY_A, pay)
                response = await web.post(f"/hooks/{a.slug}/{instance_id}", json=asaas.hook(KEY_A, event, pay),
                                          headers={"asaas-access-token": f"hook-{KEY_A}"})
                assert response.status_code == 200, response.text
                await spine.settle()
    async with spine.database.tenant(a.id) as session:
        [charge] = (await session.execute(select(Charge))).scalars().all()
    assert (charge.billing_type, charge.boleto_line, charge.boleto_url) == ("BOLETO", boleto_line(pay),
                                                                             f"{asaas.url}/b/pdf/x")
    assert charge.pix_payload and pay.removeprefix("pay_") in charge.pix_payload  # Asaas offers Pix on a boleto
    [notice] = [m for m in spine.sent(Channel.EMAIL, a.id) if m.payload.get("to") == "adm@studionorte.example"]
    assert charge.pix_payload in notice.payload["text"] and boleto_line(pay) in notice.payload["text"]
