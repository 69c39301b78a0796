"""The platform's actions: tenants, staff and their assignments, tenant users. Each validates every field
at once, writes nothing when it refuses, and leaves an audit entry with its actor when it acts."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from backoffice.platform.audit.models import AuditEntry
from backoffice.platform.audit.service import Actor
from backoffice.platform.errors import Conflict, ValidationFailed
from backoffice.tenants.staff.models import Assignment, Staff, StaffRole
from backoffice.tenants.staff.service import assign_staff, can_act_on, create_staff, unassign_staff
from backoffice.tenants.customers.models import Customer
from backoffice.tenants.registry.models import Tenant, TenantStatus
from backoffice.tenants.registry.service import create_tenant, get_tenant_by_slug, reactivate_tenant, suspend_tenant
from backoffice.tenants.users.models import TenantUser
from backoffice.tenants.users.service import create_tenant_user

ACTOR = Actor(type="staff", label="pat@provider.example", id="staff-1")
NEW_CNPJ = "45.723.174/0001-10"
PASSWORD = "correct-horse-battery"


async def _count(database, model, *where) -> int:
    async with database.system() as session:
        return (await session.execute(select(func.count()).select_from(model).where(*where))).scalar_one()


async def _audit(database, action: str) -> list[AuditEntry]:
    async with database.system() as session:
        query = select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.occurred_at)
        return list((await session.execute(query)).scalars())


async def _refused(database, error_type, **fields) -> ValidationFailed:
    """Call create_tenant, catch the refusal inside the transaction and commit it: a caller that goes
    on with other work must not find half a tenant or an audit entry in what it commits."""
    async with database.system() as session:
        with pytest.raises(error_type) as raised:
            await create_tenant(session, acting=ACTOR, **fields)
    return raised.value


# --- tenants --------------------------------------------------------------------------------------

async def test_create_tenant_names_every_bad_field_at_once_and_writes_nothing(database, tenants):
    audit_before = await _count(database, AuditEntry)
    error = await _refused(
        database, ValidationFailed, slug="Bad Slug!", display_name="Gama", legal_name="Gama Ltda",
        cnpj="11.222.333/0001-82", timezone="Mars/Olympus_Mons", locale="fr-FR",
        branding={"primary": "red", "secondary": "#00ff00"},
    )
    assert not isinstance(error, Conflict)
    assert {e.field for e in error.errors} == {"slug", "cnpj", "timezone", "locale", "branding"}
    assert await _count(database, Tenant) == 2
    assert await _count(database, AuditEntry) == audit_before

    reserved = await _refused(database, ValidationFailed, slug="api", display_name=" ", legal_name="Gama Ltda",
                              cnpj=NEW_CNPJ, branding={"primary": "#000000", "footer": "#ffffff"})
    assert {e.field for e in reserved.errors} == {"slug", "display_name", "branding"}
    assert await _count(database, Tenant) == 2


async def test_duplicate_slug_or_cnpj_is_a_conflict_naming_the_field_and_writes_nothing(database, tenants):
    audit_before = await _count(database, AuditEntry)
    by_slug = await _refused(database, Conflict, slug="alfa", display_name="Outra", legal_name="Outra Ltda",
                             cnpj=NEW_CNPJ)
    # The same CNPJ written without punctuation is still the same company.
    by_cnpj = await _refused(database, Conflict, slug="gama", display_name="Gama", legal_name="Gama Ltda",
                             cnpj="11222333000181")
    assert (by_slug.status, [e.field for e in by_slug.errors]) == (409, ["slug"])
    assert [e.field for e in by_cnpj.errors] == ["cnpj"]
    assert await _count(database, Tenant) == 2
    assert await _count(database, AuditEntry) == audit_before


async def test_create_tenant_stores_normalized_values_and_is_audited(database, tenants):
    async with database.system() as session:
        tenant = await create_tenant(session, slug="gama", display_name=" Gama Clínicas ", legal_name="Gama S.A.",
                                     cnpj="12.abc.345/01de-35", locale="en", branding={"primary": "#6D28D9"},
                                     acting=ACTOR, reason="contract signed")
    assert tenant.cnpj == "12ABC34501DE35" and tenant.display_name == "Gama Clínicas"
    assert tenant.branding["primary"] == "#6d28d9" and tenant.branding["secondary"]  # defaults filled in
    [entry] = [e for e in await _audit(database, "tenant.created") if e.target_id == str(tenant.id)]
    assert (entry.tenant_id, entry.actor_type, entry.actor_label, entry.actor_id, entry.reason) == (
        tenant.id, "staff", "pat@provider.example", "staff-1", "contract signed")


async def test_suspend_needs_a_reason_is_audited_keeps_the_data_and_reactivates(database, tenants):
    async with database.system() as session:
        alfa = await get_tenant_by_slug(session, "alfa")
        for blank in ("", "   "):
            with pytest.raises(ValidationFailed) as raised:
                await suspend_tenant(session, alfa, reason=blank, acting=ACTOR)
            assert [e.field for e in raised.value.errors] == ["reason"]
        assert alfa.status == TenantStatus.ACTIVE
        await suspend_tenant(session, alfa, reason="invoices unpaid for 90 days", acting=ACTOR)

    async with database.system() as session:
        alfa, beta = await get_tenant_by_slug(session, "alfa"), await get_tenant_by_slug(session, "beta")
        assert (alfa.status, alfa.suspended_reason) == (TenantStatus.SUSPENDED, "invoices unpaid for 90 days")
        assert beta.status == TenantStatus.ACTIVE
    [entry] = await _audit(database, "tenant.suspended")
    assert (entry.tenant_id, entry.actor_label, entry.reason) == (
        tenants.a.id, "pat@provider.example", "invoices unpaid for 90 days")
    async with database.tenant(tenants.a.id) as session:
        kept = (await session.execute(select(Customer.id))).scalars().all()
    assert sorted(kept) == sorted(tenants.a.customer_ids)

    async with database.system() as session:
        await reactivate_tenant(session, await get_tenant_by_slug(session, "alfa"), reason="paid", acting=ACTOR)
    async with database.system() as session:
        alfa = await get_tenant_by_slug(session, "alfa")
    assert (alfa.status, alfa.suspended_reason) == (TenantStatus.ACTIVE, None)
    [entry] = await _audit(database, "tenant.reactivated")
    assert (entry.tenant_id, entry.reason) == (tenants.a.id, "paid")


# --- staff ----------------------------------------------------------------------------------------

async def test_create_staff_validates_refuses_duplicates_and_is_audited(database, tenants):
    async with database.system() as session:
        with pytest.raises(ValidationFailed) as raised:
            await create_staff(session, email="not-an-email", name="", role="root", password="short", acting=ACTOR)
        assert {e.field for e in raised.value.errors} == {"email", "name", "role", "password"}
        member = await create_staff(session, email=" Otavio@Provider.example ", name="Otávio",
                                    role="provider_operator", password=PASSWORD, acting=ACTOR)
    assert member.email == "otavio@provider.example" and member.password_hash != PASSWORD
    async with database.system() as session:
        with pytest.raises(Conflict) as raised:
            await create_staff(session, email="OTAVIO@provider.example", name="Outro", role="provider_admin",
                               password=PASSWORD, acting=ACTOR)
    assert [e.field for e in raised.value.errors] == ["email"]
    assert await _count(database, Staff) == 1
    [entry] = await _audit(database, "staff.created")
    assert (entry.tenant_id, entry.target_id, entry.actor_label) == (None, str(member.id), "pat@provider.example")


async def test_assignments_decide_where_an_operator_may_act_and_are_audited(database, tenants):
    async with database.system() as session:
        admin = await create_staff(session, email="admin@provider.example", name="Patrícia", role="provider_admin",
                                   password=PASSWORD, acting=ACTOR)
        operator = await create_staff(session, email="op@provider.example", name="Otávio",
                                      role="provider_operator", password=PASSWORD, acting=ACTOR)
        alfa, beta = await get_tenant_by_slug(session, "alfa"), await get_tenant_by_slug(session, "beta")
        assert admin.role == StaffRole.ADMIN
        assert (await can_act_on(session, admin, alfa.id), await can_act_on(session, admin, beta.id)) == (True, True)
        assert await can_act_on(session, operator, alfa.id) is False

        first = await assign_staff(session, staff=operator, tenant=alfa, acting=ACTOR, reason="month-end close")
        again = await assign_staff(session, staff=operator, tenant=alfa, acting=ACTOR, reason="double click")
        assert again.id == first.id
        assert (await can_act_on(session, operator, alfa.id), await can_act_on(session, operator, beta.id)) == (
            True, False)

    async with database.system() as session:
        operator = (await session.execute(select(Staff).where(Staff.email == "op@provider.example"))).scalar_one()
        alfa = await get_tenant_by_slug(session, "alfa")
        await unassign_staff(session, staff=operator, tenant=alfa, acting=ACTOR, reason="close done")
        assert await can_act_on(session, operator, alfa.id) is False
        with pytest.raises(ValidationFailed) as raised:
            await unassign_staff(session, staff=operator, tenant=alfa, acting=ACTOR, reason="again")
        assert [e.field for e in raised.value.errors] == ["staff"]

    # The assignment stays as history, ended; being mobilised again starts a new one.
    async with database.system() as session:
        history = (await session.execute(select(Assignment))).scalars().all()
        assert [(a.tenant_id, a.ended_at is not None) for a in history] == [(tenants.a.id, True)]
    [assigned] = await _audit(database, "staff.assigned")
    [unassigned] = await _audit(database, "staff.unassigned")
    assert (assigned.tenant_id, assigned.target_id, assigned.reason) == (tenants.a.id, str(operator.id),
                                                                         "month-end close")
    assert (unassigned.tenant_id, unassigned.reason, unassigned.actor_type) == (tenants.a.id, "close done", "staff")


async def test_inactive_staff_may_act_nowhere(database, tenants):
    async with database.system() as session:
        admin = await create_staff(session, email="gone@provider.example", name="Gone", role="provider_admin",
                                   password=PASSWORD, acting=ACTOR)
        admin.active = False
        assert await can_act_on(session, admin, tenants.a.id) is False


# --- tenant users ---------------------------------------------------------------------------------

async def test_tenant_user_email_is_unique_within_a_tenant_only(database, tenants):
    async with database.provider(tenants.a.id) as session:
        with pytest.raises(Conflict) as raised:
            await create_tenant_user(session, email="ADMIN@alfa.example", name="Dup", role="tenant_member",
                                     password=PASSWORD, acting=ACTOR)
    assert [e.field for e in raised.value.errors] == ["email"]
    async with database.provider(tenants.b.id) as session:
        user = await create_tenant_user(session, email="admin@alfa.example", name="Same address, other company",
                                        role="tenant_member", password=None, acting=ACTOR)
    assert (user.tenant_id, user.password_hash) == (tenants.b.id, None)
    assert await _count(database, TenantUser, TenantUser.email == "admin@alfa.example") == 2
    entries = [e for e in await _audit(database, "user.created") if e.target_id == str(user.id)]
    assert [(e.tenant_id, e.actor_label) for e in entries] == [(tenants.b.id, "pat@provider.example")]


@pytest.mark.postgres_only
async def test_two_concurrent_assignments_do_not_lock_the_operator_out(database, tenants):
    """A double-clicked "mobilise" runs two transactions that each see no active assignment."""
    async with database.system() as session:
        await create_staff(session, email="op@provider.example", name="Otávio", role="provider_operator",
                           password=PASSWORD, acting=ACTOR)

    async def load(session):
        staff = (await session.execute(select(Staff).where(Staff.email == "op@provider.example"))).scalar_one()
        return staff, await get_tenant_by_slug(session, "alfa")

    async def mobilise():
        async with database.system() as session:
            staff, alfa = await load(session)
            return await assign_staff(session, staff=staff, tenant=alfa, acting=ACTOR, reason="month-end close")

    # Both see no active assignment; the database lets one insert win and the other returns it.
    first, second = await asyncio.gather(mobilise(), mobilise())
    assert first.id == second.id
    async with database.system() as session:
        active = (await session.execute(select(Assignment).where(Assignment.ended_at.is_(None)))).scalars().all()
    assert len(active) == 1

    async with database.system() as session:
        staff, alfa = await load(session)
        assert await can_act_on(session, staff, alfa.id) is True
        await unassign_staff(session, staff=staff, tenant=alfa, acting=ACTOR, reason="close done")
        assert await can_act_on(session, staff, alfa.id) is False
