"""Creating, updating and finding a tenant's customers (the API's and the portal's entry points)."""

from __future__ import annotations

import re
import uuid
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform.audit.service import Actor, record
from backoffice.platform.db.session import TENANT_KEY, NotFound, get_owned
from backoffice.platform.documents import normalize_tax_id
from backoffice.platform.errors import Collector, Conflict, FieldError
from backoffice.tenants.customers.models import Customer, Lifecycle
from backoffice.tenants.users.models import TenantUser

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PHONE = re.compile(r"^\+?[0-9 ()-]{8,32}$")
UPDATABLE = ("name", "email", "phone", "account_manager_id", "external_ids")


def _name(value: str) -> str:
    value = (value or "").strip() if isinstance(value, str) else ""
    if not 1 <= len(value) <= 200:
        raise ValueError("expected 1-200 characters")
    return value


def _email(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip().lower()
    if len(value) > 254 or not EMAIL.match(value):
        raise ValueError("expected an e-mail address such as finance@example.com")
    return value


def _phone(value: str | None) -> str | None:
    if value is None:
        return None
    if not PHONE.match(value.strip()):
        raise ValueError("expected a phone number of 8-32 digits, spaces, ( ) - and an optional leading +")
    return value.strip()


def _external_ids(value: dict[str, Any] | None) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > 20 or not all(
        isinstance(k, str) and 1 <= len(k) <= 32 and isinstance(v, str) and 1 <= len(v) <= 128
        for k, v in value.items()
    ):
        raise ValueError("expected up to 20 connector names (1-32 characters) to ids (1-128 characters)")
    return dict(value)


async def _account_manager(session: AsyncSession, errors: Collector, user_id: uuid.UUID | None) -> None:
    if user_id is None:
        return
    try:
        user = await get_owned(session, TenantUser, user_id)
    except NotFound:
        errors.add("account_manager_id", "no user of this company has this id")
        return
    if not user.active:
        errors.add("account_manager_id", "this user is deactivated")


async def create_customer(
    session: AsyncSession,
    *,
    name: str,
    tax_id: str,
    email: str | None = None,
    phone: str | None = None,
    account_manager_id: uuid.UUID | None = None,
    external_ids: dict[str, str] | None = None,
    acting: Actor,
) -> Customer:
    errors = Collector()
    fields = {
        "name": errors.check("name", _name, name),
        "email": errors.check("email", _email, email),
        "phone": errors.check("phone", _phone, phone),
        "external_ids": errors.check("external_ids", _external_ids, external_ids),
    }
    document = errors.check("tax_id", normalize_tax_id, tax_id)
    await _account_manager(session, errors, account_manager_id)
    errors.raise_if_any()
    kind, number = document
    if (await session.execute(select(Customer.id).where(Customer.tax_id == number))).first():
        raise Conflict(FieldError("tax_id", "a customer with this CPF/CNPJ already exists"))
    customer = Customer(**fields, tax_id_kind=kind, tax_id=number, account_manager_id=account_manager_id,
                        lifecycle=Lifecycle.ONBOARDING)
    session.add(customer)
    try:
        await session.flush()
    except IntegrityError:  # a concurrent creation won the race
        raise Conflict(FieldError("tax_id", "a customer with this CPF/CNPJ already exists")) from None
    await record(session, actor=acting, action="customer.created", target_type="customer", target_id=customer.id,
                 tenant_id=session.info[TENANT_KEY], detail={"tax_id_kind": kind})
    return customer


async def update_customer(
    session: AsyncSession, customer_id: uuid.UUID, changes: dict[str, Any], *, acting: Actor
) -> Customer:
    """Change the given fields only; the tax id and the lifecycle are not edited here."""
    customer = await get_owned(session, Customer, customer_id)
    errors = Collector()
    for field in changes:
        if field not in UPDATABLE:
            errors.add(field, "cannot be changed through an update")
    checks = {"name": _name, "email": _email, "phone": _phone, "external_ids": _external_ids}
    clean = {f: errors.check(f, checks[f], v) for f, v in changes.items() if f in checks}
    if "account_manager_id" in changes:
        await _account_manager(session, errors, changes["account_manager_id"])
        clean["account_manager_id"] = changes["account_manager_id"]
    errors.raise_if_any()
    for field, value in clean.items():
        setattr(customer, field, value)
    await session.flush()
    await record(session, actor=acting, action="customer.updated", target_type="customer", target_id=customer.id,
                 tenant_id=customer.tenant_id, detail={"fields": sorted(clean)})
    return customer


def search_customers(q: str | None = None, lifecycle: Lifecycle | None = None) -> Select:
    """Customers matching a name, e-mail or tax id fragment, optionally in one lifecycle state."""
    query = select(Customer)
    if lifecycle is not None:
        query = query.where(Customer.lifecycle == lifecycle)
    if q and q.strip():
        term = q.strip().lower()
        escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        like = f"%{escaped}%"
        conditions = [func.lower(Customer.name).like(like, escape="\\"), Customer.email.like(like, escape="\\")]
        digits = re.sub(r"[.\-/\s]", "", term).upper()
        if len(digits) >= 3 and digits.isalnum():
            conditions.append(Customer.tax_id.like(f"%{digits}%"))
        query = query.where(or_(*conditions))
    return query
