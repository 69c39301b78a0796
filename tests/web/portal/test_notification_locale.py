"""A pt-BR company's notification in its reader's language, on the inbox, the notification page and the poll
the page's script asks (tenants/notifications/reading.py has the rule)."""

from __future__ import annotations

from litestar.testing import AsyncTestClient
from sqlalchemy import select

from backoffice.tenants.customers.models import Lifecycle
from backoffice.tenants.notifications.models import Notification
from backoffice.tenants.policies.models import PolicyVersion
from backoffice.tenants.policies.schemas import PolicyConfig
from backoffice.web.app import create_app
from tests.tenants.conftest import new_customer, spine  # noqa: F401  (the running spine fixture)
from tests.web.portal.conftest import Browser


async def test_a_grace_notification_reads_in_each_readers_language_unless_the_company_wrote_only_its_own(
        spine, database, tenants):  # noqa: F811
    a = tenants.a
    customer_id = await new_customer(database, a.id, a.member_id, name="Padaria Estrela Ltda",
                                     tax_id="04.252.011/0001-10", lifecycle=Lifecycle.ACTIVE)
    await spine.ingest(a.id, {"type": "payment.overdue", "source": "asaas", "external_id": "evt-overdue-9",
                              "customer": {"id": str(customer_id)},
                              "data": {"charge": {"external_id": "pay_9", "amount_cents": 19990,
                                                  "due_date": "2026-11-01"}}})
    await spine.settle()
    async with database.tenant(a.id) as session:
        [grace] = (await session.execute(select(Notification))).scalars().all()
    assert grace.kind == "dunning.grace_started" and grace.title.startswith("Pagamento em atraso: Padaria Estrela")

    async with AsyncTestClient(app=create_app(database.settings)) as client:
        browser = Browser(client)
        assert (await browser.login("/alfa", "member@alfa.example")).status_code == 303
        inbox = (await browser.get("/alfa/inbox")).text
        assert f'<strong lang="pt-BR">{grace.title}</strong>' in inbox
        page = (await browser.get(f"/alfa/inbox/{grace.id}")).text
        assert "não foi paga" in page and "has not been paid" not in page

        await browser.post_form("/alfa/inbox", "/alfa/locale", {"locale": "en", "next": "/inbox"})
        inbox = (await browser.get("/alfa/inbox")).text
        assert '<strong lang="en">Late payment: Padaria Estrela Ltda — deadline ' in inbox
        assert "Pagamento em atraso" not in inbox
        page = (await browser.get(f"/alfa/inbox/{grace.id}")).text
        assert '<h1 lang="en">Late payment: Padaria Estrela Ltda' in page
        assert "R$199.90" in page and "has not been paid" in page and "não foi paga" not in page
        [latest] = (await browser.get("/alfa/inbox/poll")).json()["latest"]
        assert latest["lang"] == "en" and latest["title"].startswith("Late payment:")

        # The company's own words for this kind, only in Portuguese: the English reader sees them as written,
        # marked as Portuguese (we do not translate a company's words).
        config = PolicyConfig().model_dump(mode="json")
        config["templates"] = {"dunning.grace_started": {"pt-BR": {
            "title": "Atraso: {{ customer.name }}", "body": "Ligue hoje para {{ customer.name }}."}}}
        async with database.tenant(a.id) as session:
            session.add(PolicyVersion(version=1, config=config, created_by="test", reason=None))
        inbox = (await browser.get("/alfa/inbox")).text
        assert f'<strong lang="pt-BR">{grace.title}</strong>' in inbox
        page = (await browser.get(f"/alfa/inbox/{grace.id}")).text
        assert f'<h1 lang="pt-BR">{grace.title}</h1>' in page and '<div class="body" lang="pt-BR">' in page
        assert "has not been paid" not in page

    # Another tenant's reader never gets here: tests/web/portal/test_cross_tenant.py opens /inbox/<id> and the
    # poll of tenant b's notifications from tenant a's session (404 / not listed).
