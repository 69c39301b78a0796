"""The detail every notification carries: everything the front-office person needs, nobody to ask.

The same dictionary renders the templates and is stored as the notification's structured detail.
"""

from __future__ import annotations

from typing import Any

from backoffice.platform.documents import format_cnpj, format_cpf
from backoffice.platform.settings import get_settings
from backoffice.tenants.billing.models import Charge, Contract, Payment
from backoffice.tenants.customers.models import Customer
from backoffice.tenants.fiscal.models import FiscalDocument
from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.signatures.models import Signature


def customer_view(customer: Customer) -> dict[str, Any]:
    formatted = format_cpf(customer.tax_id) if customer.tax_id_kind == "cpf" else format_cnpj(customer.tax_id)
    return {"id": str(customer.id), "name": customer.name, "tax_id": formatted, "tax_id_kind": customer.tax_id_kind,
            "email": customer.email, "phone": customer.phone, "lifecycle": customer.lifecycle.value}


def customer_url(tenant: Tenant, customer: Customer) -> str:
    """The customer's page on the tenant's portal, for links in notifications and e-mails."""

    settings = get_settings()
    base = settings.base_url or f"http://{settings.host}:{settings.port}"
    return f"{base.rstrip('/')}/{tenant.slug}/customers/{customer.id}"


def tenant_view(tenant: Tenant) -> dict[str, Any]:
    return {"display_name": tenant.display_name, "slug": tenant.slug, "timezone": tenant.timezone,
            "locale": tenant.locale}


def plan_view(plan: Contract | dict[str, Any] | None) -> dict[str, Any] | None:
    if plan is None:
        return None
    if isinstance(plan, dict):
        return {"code": plan["code"], "name": plan["name"], "price_cents": plan["price_cents"]}
    return {"code": plan.plan_code, "name": plan.plan_name, "price_cents": plan.price_cents}


def charge_view(charge: Charge | None) -> dict[str, Any] | None:
    if charge is None:
        return None
    return {"id": str(charge.id), "external_id": charge.external_id, "amount_cents": charge.amount_cents,
            "due_date": charge.due_date.isoformat(), "description": charge.description,
            "payment_url": charge.payment_url, "status": charge.status.value, "billing_type": charge.billing_type,
            "pix_payload": charge.pix_payload, "boleto_line": charge.boleto_line, "boleto_url": charge.boleto_url}


def payment_view(payment: Payment | None) -> dict[str, Any] | None:
    if payment is None:
        return None
    return {"amount_cents": payment.amount_cents, "paid_at": payment.paid_at.isoformat(), "method": payment.method,
            "external_id": payment.external_id}


def documents_view(fiscal: list[FiscalDocument], signed: list[Signature], extra: list[dict] | None = None) -> list[dict]:
    """Every document a start notification should link: notas fiscais, signed contracts, the event's links."""
    documents: list[dict[str, Any]] = []
    for doc in fiscal:
        documents.append({"kind": doc.kind, "number": doc.number, "url": doc.pdf_url, "xml_url": doc.xml_url})
    for sig in signed:
        documents.append({"kind": "contract", "number": sig.external_id, "url": sig.document_url})
    for link in extra or []:
        documents.append({"kind": link.get("kind"), "number": link.get("number"), "url": link.get("url")})
    return documents
