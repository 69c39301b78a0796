"""The agreement pages and the reconciliation repairs page: pt-BR, refusals as 4xx naming the field, and
another tenant's (or an unassigned operator's) request a 404 like a missing page."""

from __future__ import annotations

import uuid
from datetime import date

from backoffice.tenants.billing.models import Charge, ChargeStatus
from tests.web.console.conftest import admin_client, operator_client, staff_members  # noqa: F401  fixtures
from tests.web.portal.conftest import Browser, browser, portal  # noqa: F401  fixtures


async def overdue_charge(database, tenant_id, customer_id) -> uuid.UUID:
    async with database.tenant(tenant_id) as session:
        charge = Charge(customer_id=customer_id, amount_cents=19990, due_date=date(2026, 10, 5), source="asaas",
                        external_id=f"pay_{uuid.uuid4().hex[:12]}", status=ChargeStatus.OVERDUE,
                        description="Mensalidade outubro")
        session.add(charge)
        await session.flush()
        return charge.id


async def test_portal_agreements_page_and_its_refusals(database, tenants, browser):  # noqa: F811
    a, b = tenants.a, tenants.b
    customer = a.customer_ids[0]
    charge = await overdue_charge(database, a.id, customer)
    assert (await browser.login(f"/{a.slug}", f"member@{a.slug}.example")).status_code == 303
    page_path = f"/{a.slug}/customers/{customer}/agreements"
    page = await browser.get(page_path)
    assert page.status_code == 200
    assert "Propor um acordo" in page.text and "Nenhum acordo ainda." in page.text and "R$ 199,90" in page.text
    assert "Propose an agreement" not in page.text
    refused = await browser.post_form(page_path, page_path, {"charges": str(charge), "instalments": "30",
                                                             "first_due_date": "ontem"})
    assert refused.status_code == 422
    assert "Número de parcelas" in refused.text and "informe um número de parcelas de 1 a 24" in refused.text
    assert "Vencimento da primeira parcela" in refused.text and "informe uma data como 2026-12-20" in refused.text
    # Another tenant's customer under this tenant's address, and this page for the other tenant's user: 404.
    assert (await browser.get(f"/{a.slug}/customers/{b.customer_ids[0]}/agreements")).status_code == 404
    foreign = await browser.client.post(f"/{a.slug}/customers/{b.customer_ids[0]}/agreements",
                                        data={"instalments": "3", "_csrf_token": "x"}, headers=browser.headers)
    assert foreign.status_code in (403, 404)
    other = Browser(browser.client)
    assert (await other.login(f"/{b.slug}", f"member@{b.slug}.example")).status_code == 303
    assert (await other.get(f"/{b.slug}/customers/{customer}/agreements")).status_code == 404


async def test_console_agreements_and_repairs_behind_the_door(database, tenants, operator_client):  # noqa: F811
    a, b = tenants.a, tenants.b
    customer = a.customer_ids[0]
    await overdue_charge(database, a.id, customer)
    path = f"/staff/tenants/{a.id}/customers/{customer}/agreements"
    page = await operator_client.get(path)
    assert page.status_code == 200 and "Propor um acordo" in page.text
    refused = await operator_client.post_form(path, path, {"instalments": "0", "first_due_date": "2026-12-20"})
    assert refused.status_code == 422 and "escolha ao menos uma cobrança vencida" in refused.text
    repairs = await operator_client.get(f"/staff/tenants/{a.id}/reconciliation")
    assert repairs.status_code == 200 and "Nada a corrigir" in repairs.text
    missing = await operator_client.post_form(f"/staff/tenants/{a.id}/reconciliation",
                                              f"/staff/tenants/{a.id}/reconciliation/findings/{uuid.uuid4()}/repair",
                                              {})
    assert missing.status_code == 404
    # Tenant B is not this operator's: every page and action is a 404, as for a tenant that does not exist.
    token_page = f"/staff/tenants/{a.id}/reconciliation"
    for get_path in (f"/staff/tenants/{b.id}/customers/{b.customer_ids[0]}/agreements",
                     f"/staff/tenants/{b.id}/reconciliation",
                     f"/staff/tenants/{a.id}/customers/{b.customer_ids[0]}/agreements"):
        assert (await operator_client.get(get_path)).status_code == 404, get_path
    for action in (f"/staff/tenants/{b.id}/reconciliation/repair-all",
                   f"/staff/tenants/{b.id}/customers/{b.customer_ids[0]}/agreements"):
        assert (await operator_client.post_form(token_page, action, {"instalments": "3"})).status_code == 404, action
