"""Demo data for the embedded mode: two tenants with staff, users and a few customers, then a month of their
activity played through the real intake and spine (``demo_activity.py``). Idempotent."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from backoffice.platform.audit.service import Actor
from backoffice.platform.db.base import new_id
from backoffice.platform.db.session import Database
from backoffice.platform.documents import normalize_tax_id
from backoffice.tenants.billing.models import Contract, ContractStatus
from backoffice.tenants.customers.models import Customer, Lifecycle
from backoffice.tenants.events.models import Event
from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.registry.service import create_tenant
from backoffice.tenants.staff.models import Staff
from backoffice.tenants.staff.service import assign_staff, create_staff
from backoffice.tenants.timeline.models import FeedbackItem
from backoffice.tenants.timeline.service import add_note, reply_to_feedback
from backoffice.tenants.users.models import TenantUser
from backoffice.tenants.users.service import create_tenant_user
from backoffice.web.entry.demo_activity import ACCOUNTS, play_month

DEMO_PASSWORD = "demo-password-123"


@dataclass(frozen=True)
class DemoLogin:
    where: str
    email: str
    role: str


STAFF = [("admin@provider.example", "Patrícia Prado", "provider_admin"),
         ("operator@provider.example", "Otávio Oliveira", "provider_operator")]
TENANTS = [
    {
        "slug": "aurora", "display_name": "Aurora Software", "legal_name": "Aurora Software Ltda",
        "cnpj": "11.222.333/0001-81", "branding": {"primary": "#6d28d9", "secondary": "#f59e0b"},
        "users": [("ana@aurora.example", "Ana Azevedo", "tenant_admin"),
                  ("bruno@aurora.example", "Bruno Barros", "tenant_member")],
        # Every customer starts in onboarding, its subscription at Asaas (demo_activity.ACCOUNTS) a pending
        # contract; the month of events (web/entry/demo_activity.py) moves them on.
        "customers": [("Casa do Pão Ltda", "45.723.174/0001-10", "financeiro@casadopao.example", Lifecycle.ONBOARDING),
                      ("Maria Silva", "529.982.247-25", "maria.silva@example.com", Lifecycle.ONBOARDING),
                      ("Oficina Rápida ME", "12.ABC.345/01DE-35", "contato@oficinarapida.example", Lifecycle.ONBOARDING),
                      ("Bistrô Lua Ltda", "60.701.190/0001-04", "contas@bistrolua.example", Lifecycle.ONBOARDING)],

        # What the front office learned from customers (customer, author, kind, text), for the staff's inbox.
        "notes": [(1, "bruno@aurora.example", "feedback",
                   "Adoraram o novo plano, mas pediram o boleto com o detalhamento por filial."),
                  (3, "ana@aurora.example", "feedback",
                   "Disse que não recebeu o lembrete antes do vencimento; conferir o e-mail cadastrado."),
                  (2, "bruno@aurora.example", "note", "Prefere ser contatada por WhatsApp à tarde.")],
    },
    {
        "slug": "vitta", "display_name": "Vitta Academias", "legal_name": "Vitta Academias S.A.",
        "cnpj": "34.028.316/0001-03", "branding": {"primary": "#047857", "secondary": "#0ea5e9"},
        "users": [("carla@vitta.example", "Carla Costa", "tenant_admin")],
        "customers": [("João Pereira", "111.444.777-35", "joao.pereira@example.com", Lifecycle.ONBOARDING),
                      ("Studio Fit Eireli", "04.252.011/0001-10", "adm@studiofit.example", Lifecycle.ONBOARDING)],

        "notes": [(1, "carla@vitta.example", "feedback",
                   "Bloqueio pegou o estúdio de surpresa: pedem um aviso por telefone antes do próximo.")],
    },
]


async def seed_demo(database: Database) -> list[DemoLogin]:

    actor = Actor.system("demo-seed")
    logins = [DemoLogin("staff", email, role) for email, _, role in STAFF]
    async with database.system() as session:
        if (await session.execute(select(Tenant.id).where(Tenant.slug == TENANTS[0]["slug"]))).first():
            return logins + [DemoLogin(f"/{t['slug']}/", u[0], u[2]) for t in TENANTS for u in t["users"]]
        staff = {}
        tenant_ids = {}
        for email, name, role in STAFF:
            staff[email] = await create_staff(session, email=email, name=name, role=role,
                                              password=DEMO_PASSWORD, acting=actor)
        for spec in TENANTS:
            tenant = await create_tenant(session, slug=spec["slug"], display_name=spec["display_name"],
                                         legal_name=spec["legal_name"], cnpj=spec["cnpj"],
                                         branding=spec["branding"], acting=actor)
            if spec["slug"] == "aurora":
                await assign_staff(session, staff=staff["operator@provider.example"], tenant=tenant, acting=actor,
                                   reason="demo: operator mobilised on Aurora")
            tenant_ids[spec["slug"]] = tenant.id
    for spec in TENANTS:
        async with database.provider(tenant_ids[spec["slug"]]) as session:
            manager = None
            for email, name, role in spec["users"]:
                user = await create_tenant_user(session, email=email, name=name, role=role,
                                                password=DEMO_PASSWORD, acting=actor)
                manager = manager or user
            for name, tax_id, email, lifecycle in spec["customers"]:
                kind, number = normalize_tax_id(tax_id)
                customer = Customer(id=new_id(), name=name, tax_id_kind=kind, tax_id=number, email=email,
                                    account_manager_id=manager.id, lifecycle=lifecycle)
                session.add(customer)
                await session.flush()
                if number in ACCOUNTS[spec["slug"]]:  # the subscription at the gateway, not started yet
                    _, subscription, plan = ACCOUNTS[spec["slug"]][number]
                    session.add(Contract(id=new_id(), customer_id=customer.id, plan_code=plan["code"],
                                         plan_name=plan["name"], price_cents=plan["price_cents"],
                                         billing_day=plan["billing_day"], status=ContractStatus.PENDING,
                                         source="asaas", external_id=subscription))
        admin = staff[STAFF[0][0]]
        await _front_office_notes(database, tenant_ids[spec["slug"]], spec["notes"], answer=spec is TENANTS[0],
                                  admin_name=admin.name, admin=Actor(type="staff", label=admin.email, id=str(admin.id)))
        for email, _, role in spec["users"]:
            logins.append(DemoLogin(f"/{spec['slug']}/", email, role))
    await play_month(database, database.settings, tenant_ids)
    return logins


async def _front_office_notes(database: Database, tenant_id, notes, *, answer: bool, admin_name: str,
                              admin: Actor) -> None:
    """Notes recorded as the portal records them (the tenant's own door, its user as actor), so the staff
    console's feedback inbox has something to show; with ``answer``, the first gets the back office's reply."""
    async with database.tenant(tenant_id) as session:
        users = {u.email: u for u in (await session.execute(select(TenantUser))).scalars()}
        customers = list((await session.execute(select(Customer).order_by(Customer.name))).scalars())
        entries = []
        for index, email, label, text in notes:
            user = users[email]
            entries.append(await add_note(session, customers[index].id, text=text, author_id=user.id, label=label,
                                          acting=Actor(type="tenant_user", label=user.email, id=str(user.id))))
    if not answer:
        return
    async with database.provider(tenant_id) as session:
        item = (await session.execute(select(FeedbackItem).where(FeedbackItem.entry_id == entries[0].id))).scalar_one()
        await reply_to_feedback(session, item.id, text="Combinado: a partir do próximo mês o boleto vem por filial.",
                                author_name=admin_name, acting=admin)


async def demo_counts(database: Database) -> dict[str, int]:

    async with database.system() as session:
        return {
            "tenants": (await session.execute(select(func.count()).select_from(Tenant))).scalar_one(),
            "staff": (await session.execute(select(func.count()).select_from(Staff))).scalar_one(),
            "users": (await session.execute(select(func.count()).select_from(TenantUser))).scalar_one(),
            "customers": (await session.execute(select(func.count()).select_from(Customer))).scalar_one(),
            "events": (await session.execute(select(func.count()).select_from(Event))).scalar_one(),
        }
