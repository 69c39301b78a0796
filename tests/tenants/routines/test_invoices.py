"""The invoices routine through the real spine, each tenant with its own local Focus NFe: notas issued
and followed until the city hall answers, rejections told once, Focus NFe's refusals in its own words,
a crash after the POST and lost answers that never make a second nota, the 48-hour limit, and tenant
isolation."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from backoffice.connectors.focusnfe import FocusNfe
from backoffice.connectors.directory import ConnectorDirectory
from backoffice.connectors.service import create_instance
from backoffice.tenants.connections import directory as connection_directory
from backoffice.tenants.connections import install_directory
from backoffice.web.entry.wiring import DOMAIN_PORTS
from backoffice.platform.audit.service import Actor
from backoffice.platform.errors import Conflict, ValidationFailed
from backoffice.platform.settings import get_settings
from backoffice.tenants.billing.models import Charge, ChargeStatus, Payment
from backoffice.tenants.events.models import Event
from backoffice.tenants.fiscal.models import FiscalDocument, FiscalStatus
from backoffice.tenants.notifications.models import Notification
from backoffice.tenants.routines import engine
from backoffice.tenants.routines.models import ItemStatus, RoutineRun, RunItem, RunStatus
from tests.providers.focusnfe import FakeFocusNfe, serving

STAFF = Actor(type="staff", label="staff:ana@provider.test", id="ana")
PROVIDER_ADMIN = Actor(type="staff", label="staff:admin@provider.test", id="admin")
PERIOD = "2026-11-02"  # the spine's clock starts on 2026-11-02, 12:00 in São Paulo
ISSUING = {"prestador_cnpj": "11.222.333/0001-81", "inscricao_municipal": "12345", "codigo_municipio": "3550308",
           "item_lista_servico": "0107", "codigo_tributario_municipio": "620910000", "aliquota": "2.5",
           "discriminacao": "Assessoria financeira"}
REJECTION = ("E145", "Regime Especial de Tributação ausente/inválido.")


@pytest.fixture(autouse=True)
def connections() -> Iterator[ConnectorDirectory]:
    """The routines' connection directory, with short timeouts (its settings are set by :func:`equip`)."""
    directory = ConnectorDirectory(DOMAIN_PORTS, timeout=5.0, retries=0, backoff=0.01, threshold=5, cooldown=0.2)
    previous = install_directory(directory)
    yield directory
    install_directory(previous)


@pytest.fixture
def focus() -> Iterator[tuple[FakeFocusNfe, FakeFocusNfe]]:
    """Tenant A's and tenant B's Focus NFe accounts: separate servers, separate tokens."""
    with serving(FakeFocusNfe("token-alfa")) as a, serving(FakeFocusNfe("token-beta")) as b:
        yield a, b


async def equip(spine, tenant_id: uuid.UUID, fake: FakeFocusNfe, **config) -> None:
    # Sealed with the settings the routines' directory opens connectors with. The fake listens on loopback:
    # private targets allowed, and its host allowed by a provider admin's override.
    settings = get_settings().model_copy(update={"allow_private_targets": True})
    connection_directory().settings = settings
    async with spine.database.provider(tenant_id) as session:
        await create_instance(session, kind="focusnfe", name="Focus NFe", acting=PROVIDER_ADMIN, settings=settings,
                              config={"base_url": fake.url, "token": fake.token, **config}, host_override="127.0.0.1")


async def paid(spine, tenant_id: uuid.UUID, customer_id: uuid.UUID, cents: int, on: date, *, charge: bool = True,
               status: ChargeStatus = ChargeStatus.PAID) -> uuid.UUID:
    """A charge the gateway reported paid, and its payment; returns the payment's id."""
    paid_at = datetime(on.year, on.month, on.day, 14, 0, tzinfo=UTC)
    async with spine.database.tenant(tenant_id) as session:
        charge_row = None
        if charge:
            charge_row = Charge(customer_id=customer_id, amount_cents=cents, due_date=on, status=status,
                                description="Plano Pro", source="asaas", external_id=f"pay_{uuid.uuid4().hex[:12]}",
                                paid_at=paid_at)
            session.add(charge_row)
            await session.flush()
        payment = Payment(customer_id=customer_id, charge_id=charge_row.id if charge_row else None, amount_cents=cents,
                          method="pix", paid_at=paid_at, source="asaas", external_id=f"rcv_{uuid.uuid4().hex[:12]}",
                          raw={})
        session.add(payment)
        await session.flush()
        return payment.id


async def start(spine, tenant_id: uuid.UUID, period: str = PERIOD) -> uuid.UUID:
    async with spine.database.provider(tenant_id) as session:
        return (await engine.start_run(session, "invoices", period=period, actor=STAFF)).id


async def run_and_items(spine, tenant_id, run_id) -> tuple[RoutineRun, dict[uuid.UUID, RunItem]]:
    async with spine.database.tenant(tenant_id) as session:
        run = await session.get(RoutineRun, (tenant_id, run_id))
        items = (await session.execute(select(RunItem).where(RunItem.run_id == run_id))).scalars().all()
        return run, {uuid.UUID(i.data["payment_id"]): i for i in items}


async def documents(spine, tenant_id) -> list[FiscalDocument]:
    async with spine.database.tenant(tenant_id) as session:
        return list((await session.execute(select(FiscalDocument).order_by(FiscalDocument.created_at,
                                                                            FiscalDocument.external_id))).scalars())


async def test_each_tenant_issues_its_paid_charges_notas_at_its_own_focus_nfe_and_follows_them(spine, focus):
    a, b = spine.tenants.a, spine.tenants.b
    fake_a, fake_b = focus
    await equip(spine, a.id, fake_a, **ISSUING)
    await equip(spine, b.id, fake_b, **{**ISSUING, "prestador_cnpj": "34.028.316/0001-03"})
    bakery = await paid(spine, a.id, a.customer_ids[0], 19990, date(2026, 10, 30))
    maria = await paid(spine, a.id, a.customer_ids[1], 9900, date(2026, 11, 2))
    # Not invoiced: paid before the 35-day window, no charge, a refunded charge.
    await paid(spine, a.id, a.customer_ids[0], 19990, date(2026, 9, 20))
    await paid(spine, a.id, a.customer_ids[1], 500, date(2026, 11, 1), charge=False)
    await paid(spine, a.id, a.customer_ids[1], 700, date(2026, 11, 1), status=ChargeStatus.REFUNDED)
    joao = await paid(spine, b.id, b.customer_ids[0], 5000, date(2026, 11, 1))

    run_a, run_b = await start(spine, a.id), await start(spine, b.id)
    await spine.settle()
    run, items = await run_and_items(spine, a.id, run_a)
    assert (run.status, run.items_total, run.items_done) == (RunStatus.RUNNING, 2, 0)
    assert set(items) == {bakery, maria} and {i.status for i in items.values()} == {ItemStatus.WAITING}
    assert items[maria].label == "Maria Silva — R$ 99,00, paid 2026-11-02"
    assert {i.customer_id for i in items.values()} == set(a.customer_ids)
    # One nota per payment, at A's own Focus NFe, with A's token; B's went to B's.
    assert sorted(fake_a.notas) == sorted(i.result["ref"] for i in items.values())
    assert all(r.auth == "Basic dG9rZW4tYWxmYTo=" for r in fake_a.log)  # base64("token-alfa:")
    _, items_b = await run_and_items(spine, b.id, run_b)
    assert set(items_b) == {joao} and list(fake_b.notas) == [items_b[joao].result["ref"]]
    sent = fake_a.notas[items[bakery].result["ref"]].body
    assert sent["prestador"] == {"cnpj": "11222333000181", "inscricao_municipal": "12345", "codigo_municipio": "3550308"}
    assert sent["tomador"] == {"cnpj": "45723174000110", "razao_social": "Casa do Pão", "email": "45723174000110@example.com"}
    assert sent["servico"] == {"valor_servicos": 199.9, "iss_retido": False, "item_lista_servico": "0107",
                               "codigo_municipio": "3550308", "aliquota": 2.5, "codigo_tributario_municipio": "620910000",
                               "discriminacao": "Assessoria financeira: Plano Pro (pagamento recebido em 30/10/2026)"}
    assert sent["data_emissao"] == "2026-11-02T12:00:00-03:00"
    assert fake_b.notas[items_b[joao].result["ref"]].body["prestador"]["cnpj"] == "34028316000103"
    docs = await documents(spine, a.id)
    assert {(d.status, d.charge_id is not None, d.source) for d in docs} == {(FiscalStatus.PROCESSING, True, "focusnfe")}

    # Nothing changes until the city hall answers.
    await spine.advance(seconds=31)
    run, items = await run_and_items(spine, a.id, run_a)
    assert run.status == RunStatus.RUNNING and {i.status for i in items.values()} == {ItemStatus.WAITING}
    assert fake_a.process() and fake_b.process()
    await spine.advance(seconds=61)

    run, items = await run_and_items(spine, a.id, run_a)
    assert (run.status, run.items_done, run.items_failed) == (RunStatus.SUCCEEDED, 2, 0)
    for item in items.values():
        nota = fake_a.notas[item.result["ref"]]
        assert (item.status, item.result["number"]) == (ItemStatus.DONE, nota.numero)
        assert item.result["pdf_url"] == f"https://focus.example/notas/{nota.numero}.pdf"
    docs = await documents(spine, a.id)
    assert sorted((d.external_id, d.status, d.number, d.pdf_url) for d in docs) == sorted(
        (ref, FiscalStatus.AUTHORIZED, n.numero, f"https://focus.example/notas/{n.numero}.pdf")
        for ref, n in fake_a.notas.items())
    assert all(d.xml_url.startswith(fake_a.url + "/arquivos/") for d in docs)
    assert sorted(d.amount_cents for d in docs) == [9900, 19990]  # kept: Focus NFe's status omits the value
    run_b_row, _ = await run_and_items(spine, b.id, run_b)
    assert run_b_row.status == RunStatus.SUCCEEDED
    assert [d.status for d in await documents(spine, b.id)] == [FiscalStatus.AUTHORIZED]

    # A re-run of the period issues nothing new.
    posts = len(fake_a.posts())
    rerun = await start(spine, a.id)
    await spine.settle()
    again, again_items = await run_and_items(spine, a.id, rerun)
    assert (again.status, again.items_total, again_items) == (RunStatus.SUCCEEDED, 0, {})
    assert len(fake_a.posts()) == posts and len(fake_a.notas) == 2


async def test_a_rejected_nota_fails_its_item_tells_the_front_office_once_and_a_retry_issues_a_new_ref(spine, focus):
    a = spine.tenants.a
    fake, _ = focus
    await equip(spine, a.id, fake, **ISSUING)
    rejected = await paid(spine, a.id, a.customer_ids[0], 19990, date(2026, 10, 30))
    fine = await paid(spine, a.id, a.customer_ids[1], 9900, date(2026, 10, 31))
    fake.reject(a.customer_ids[0], REJECTION)
    run_id = await start(spine, a.id)
    await spine.settle()
    fake.process()
    await spine.advance(seconds=31)

    run, items = await run_and_items(spine, a.id, run_id)
    assert (run.status, run.items_done, run.items_failed) == (RunStatus.PARTIAL, 1, 1)
    assert items[fine].status == ItemStatus.DONE
    assert items[rejected].status == ItemStatus.FAILED
    assert items[rejected].error == f"the city hall rejected the nota fiscal: {REJECTION[1]}"
    first_ref = items[rejected].result["ref"]
    async with spine.database.tenant(a.id) as session:
        events = (await session.execute(select(Event.type, Event.customer_id).where(
            Event.type.in_(["invoice.rejected", "routine.item_failed"])))).all()
        kinds = set((await session.execute(select(Notification.kind).where(
            Notification.customer_id == a.customer_ids[0]))).scalars())
        notes = (await session.execute(select(Notification).where(Notification.kind == "invoice.rejected"))).scalars().all()
    # Told once, by the rejection itself, with the city hall's words; not again as a failed routine item.
    assert events == [("invoice.rejected", a.customer_ids[0])]
    assert "invoice.rejected" in kinds and "routine.item_failed" not in kinds
    assert notes and all(REJECTION[1] in n.body for n in notes)
    [doc] = [d for d in await documents(spine, a.id) if d.external_id == first_ref]
    assert (doc.status, doc.message) == (FiscalStatus.REJECTED, REJECTION[1])

    # The tax regime is fixed at the city hall; staff retry the failed item: a new ref, a new nota.
    fake.forgive(a.customer_ids[0])
    async with spine.database.provider(a.id) as session:
        retry_id = (await engine.retry_failed(session, run_id, actor=STAFF, reason="regime fixed")).id
    await spine.settle()
    fake.process()
    await spine.advance(seconds=31)
    retry, retried = await run_and_items(spine, a.id, retry_id)
    assert (retry.status, set(retried)) == (RunStatus.SUCCEEDED, {rejected})
    second_ref = retried[rejected].result["ref"]
    assert second_ref != first_ref and second_ref.endswith("-2") and first_ref.endswith("-1")
    assert (fake.notas[first_ref].status, fake.notas[second_ref].status) == ("erro_autorizacao", "autorizado")
    charge_docs = [d for d in await documents(spine, a.id) if d.external_id in (first_ref, second_ref)]
    assert [(d.external_id, d.status) for d in charge_docs] == [
        (first_ref, FiscalStatus.REJECTED), (second_ref, FiscalStatus.AUTHORIZED)]


async def test_a_nota_focus_nfe_refuses_fails_its_item_in_focus_nfes_words_and_tells_the_front_office(spine, focus):
    a = spine.tenants.a
    fake, _ = focus
    await equip(spine, a.id, fake, **ISSUING)
    refused = await paid(spine, a.id, a.customer_ids[1], 9900, date(2026, 10, 31))
    fake.refuse(a.customer_ids[1], 422, "requisicao_invalida", "Parâmetro \"tomador.endereco.cep\" não informado")
    run_id = await start(spine, a.id)
    await spine.settle()
    run, items = await run_and_items(spine, a.id, run_id)
    assert (run.status, items[refused].status) == (RunStatus.FAILED, ItemStatus.FAILED)
    assert items[refused].error == ("Focus NFe refused the nota: Parâmetro \"tomador.endereco.cep\" não informado "
                                    "(requisicao_invalida, HTTP 422)")
    assert await documents(spine, a.id) == [] and fake.notas == {}  # nothing was issued
    async with spine.database.tenant(a.id) as session:
        notes = (await session.execute(select(Notification).where(Notification.kind == "routine.item_failed"))).scalars().all()
    assert notes and all("tomador.endereco.cep" in n.body for n in notes)
    assert {n.customer_id for n in notes} == {a.customer_ids[1]}


async def test_a_crash_after_the_post_resends_the_same_ref_and_focus_nfe_holds_one_nota(spine, focus, monkeypatch):
    a = spine.tenants.a
    fake, _ = focus
    await equip(spine, a.id, fake, **ISSUING)
    payment = await paid(spine, a.id, a.customer_ids[0], 19990, date(2026, 10, 30))
    issue = FocusNfe.issue
    crashes = []

    async def issue_then_crash(self, ctx, ref, nfse):
        answer = await issue(self, ctx, ref, nfse)  # Focus NFe took the nota...
        if not crashes:
            crashes.append(ref)  # ...and the worker lost its database connection before the commit
            raise ConnectionResetError("connection to the database lost after Focus NFe accepted the nota")
        return answer

    monkeypatch.setattr(FocusNfe, "issue", issue_then_crash)
    run_id = await start(spine, a.id)
    await spine.settle()

    run, items = await run_and_items(spine, a.id, run_id)
    item = items[payment]
    assert (item.status, item.result["ref"]) == (ItemStatus.WAITING, crashes[0])
    # Sent once: the repeat looked the ref up first (issue 18, finding 3) and followed the nota it found.
    assert len(fake.posts(crashes[0])) == 1 and list(fake.notas) == crashes
    assert fake.notas[crashes[0]].sent == 1
    assert [d.external_id for d in await documents(spine, a.id)] == crashes
    fake.process()
    await spine.advance(seconds=31)
    run, items = await run_and_items(spine, a.id, run_id)
    assert (run.status, items[payment].result["number"]) == (RunStatus.SUCCEEDED, fake.notas[crashes[0]].numero)


async def test_a_crash_after_the_post_then_a_rejection_is_followed_not_issued_again(spine, focus, monkeypatch):
    """The city hall rejected the nota between the crash and the retry: the retry finds the ref at Focus NFe
    (GET before POST) and records the rejection; POSTing the rejected ref again would issue it anew."""
    a = spine.tenants.a
    fake, _ = focus
    await equip(spine, a.id, fake, **ISSUING)
    payment = await paid(spine, a.id, a.customer_ids[0], 19990, date(2026, 10, 30))
    fake.reject(a.customer_ids[0], REJECTION)
    issue = FocusNfe.issue
    crashes = []

    async def issue_then_crash(self, ctx, ref, nfse):
        answer = await issue(self, ctx, ref, nfse)
        if not crashes:
            crashes.append(ref)
            fake.process()  # the city hall answers at once...
            raise ConnectionResetError("connection to the database lost after Focus NFe accepted the nota")
        return answer

    monkeypatch.setattr(FocusNfe, "issue", issue_then_crash)
    run_id = await start(spine, a.id)
    await spine.settle()

    run, items = await run_and_items(spine, a.id, run_id)
    assert items[payment].status == ItemStatus.FAILED
    assert items[payment].error == f"the city hall rejected the nota fiscal: {REJECTION[1]}"
    assert len(fake.posts(crashes[0])) == 1 and fake.notas[crashes[0]].sent == 1
    assert fake.notas[crashes[0]].status == "erro_autorizacao"
    [doc] = await documents(spine, a.id)
    assert (doc.external_id, doc.status) == (crashes[0], FiscalStatus.REJECTED)


async def test_503s_from_focus_nfe_are_retried_and_a_lost_answer_makes_no_second_nota(spine, focus):
    a = spine.tenants.a
    fake, _ = focus
    await equip(spine, a.id, fake, **ISSUING)
    first = await paid(spine, a.id, a.customer_ids[0], 19990, date(2026, 10, 30))
    second = await paid(spine, a.id, a.customer_ids[1], 9900, date(2026, 10, 31))
    fake.fail_next(1)  # one POST refused outright
    fake.fail_next(1, after_store=True)  # one stored, its answer lost
    run_id = await start(spine, a.id)
    await spine.settle()
    run, items = await run_and_items(spine, a.id, run_id)
    assert {i.status for i in items.values()} == {ItemStatus.PENDING}
    assert all("provider answered 503" in i.error for i in items.values())
    assert len(fake.notas) == 1

    await spine.advance(seconds=15)  # the first backoff (10 s, ±20%)
    run, items = await run_and_items(spine, a.id, run_id)
    assert {i.status for i in items.values()} == {ItemStatus.WAITING}
    assert sorted(fake.notas) == sorted(i.result["ref"] for i in items.values())
    # The refused POST was sent again; the stored one whose answer was lost was found by its ref instead.
    assert sorted(len(fake.posts(ref)) for ref in fake.notas) == [1, 2]
    assert all(nota.sent == 1 for nota in fake.notas.values())
    fake.process()
    await spine.advance(seconds=31)
    run, items = await run_and_items(spine, a.id, run_id)
    assert (run.status, run.items_done) == (RunStatus.SUCCEEDED, 2)
    assert {items[first].attempts, items[second].attempts} == {3}  # send, resend, one status check


async def test_a_nota_processing_past_48_hours_fails_its_item_and_a_retry_follows_the_same_nota(spine, focus):
    a = spine.tenants.a
    fake, _ = focus
    await equip(spine, a.id, fake, **ISSUING)
    payment = await paid(spine, a.id, a.customer_ids[0], 19990, date(2026, 10, 30))
    run_id = await start(spine, a.id)
    await spine.settle()
    await spine.advance(hours=49)
    run, items = await run_and_items(spine, a.id, run_id)
    ref = items[payment].result["ref"]
    assert (run.status, items[payment].status) == (RunStatus.FAILED, ItemStatus.FAILED)
    assert items[payment].error.startswith(f"Focus NFe has been processing nota {ref} for 49 h")
    async with spine.database.tenant(a.id) as session:
        notes = (await session.execute(select(Notification).where(Notification.kind == "routine.item_failed"))).scalars().all()
    assert notes and all(ref in n.body for n in notes)

    async with spine.database.provider(a.id) as session:
        retry_id = (await engine.retry_failed(session, run_id, actor=STAFF)).id
    await spine.settle()
    fake.process()
    await spine.advance(seconds=31)
    retry, items = await run_and_items(spine, a.id, retry_id)
    assert (retry.status, items[payment].result["ref"]) == (RunStatus.SUCCEEDED, ref)
    assert list(fake.notas) == [ref] and len(fake.posts(ref)) == 1 and fake.notas[ref].sent == 1


async def test_a_tenant_without_a_focus_nfe_is_refused_and_one_without_prestador_data_gets_a_failed_run_saying_why(spine, focus):
    a, b = spine.tenants.a, spine.tenants.b
    fake, _ = focus
    await paid(spine, a.id, a.customer_ids[0], 19990, date(2026, 10, 30))
    await equip(spine, b.id, fake, prestador_cnpj="34.028.316/0001-03")  # hooks only: no issuing data
    await paid(spine, b.id, b.customer_ids[0], 5000, date(2026, 11, 1))
    with pytest.raises(Conflict, match="needs an enabled focusnfe connector and this company has none"):
        await start(spine, a.id)
    run_b = await start(spine, b.id)
    await spine.settle()
    failed_b, _ = await run_and_items(spine, b.id, run_b)
    assert (failed_b.status, failed_b.error) == (
        RunStatus.FAILED, ("connector 'Focus NFe' cannot issue notas yet: fill in inscricao_municipal, "
                           "codigo_municipio, item_lista_servico in its configuration"))
    assert fake.log == []


async def test_tenant_bs_run_never_touches_tenant_as_payments_documents_or_focus_nfe(spine, focus):
    a, b = spine.tenants.a, spine.tenants.b
    fake_a, fake_b = focus
    await equip(spine, a.id, fake_a, **ISSUING)
    await equip(spine, b.id, fake_b, **ISSUING)
    a_payments = {await paid(spine, a.id, c, 19990, date(2026, 10, 30)) for c in a.customer_ids}
    run_a = await start(spine, a.id)
    await spine.settle()  # A's notas processing: documents exist, payments invoiced
    a_docs = [(d.external_id, d.status) for d in await documents(spine, a.id)]
    a_requests = len(fake_a.log)

    b_payment = await paid(spine, b.id, b.customer_ids[1], 5000, date(2026, 11, 1))  # same person as A's Maria
    run_b = await start(spine, b.id)
    await spine.settle()
    fake_b.process()
    await spine.advance(seconds=31)
    run, items = await run_and_items(spine, b.id, run_b)
    assert (run.status, set(items)) == (RunStatus.SUCCEEDED, {b_payment})
    assert all(r.auth == "Basic dG9rZW4tYmV0YTo=" for r in fake_b.log)  # base64("token-beta:")
    assert [n.ref.split("-")[0] for n in fake_b.notas.values()] == [b.customer_ids[1].hex]
    # A's Focus NFe saw only A's own status checks; A's documents and run are as they were.
    assert all(r.method == "GET" for r in fake_a.log[a_requests:])
    assert [(d.external_id, d.status) for d in await documents(spine, a.id)] == a_docs
    a_run, a_items = await run_and_items(spine, a.id, run_a)
    assert set(a_items) == a_payments and a_run.status == RunStatus.RUNNING
    async with spine.database.tenant(b.id) as session:
        assert {d.customer_id for d in (await session.execute(select(FiscalDocument))).scalars()} == {b.customer_ids[1]}
        assert (await session.execute(select(Payment).where(Payment.id.in_(a_payments)))).first() is None


async def test_the_issuing_configuration_is_checked_field_by_field(database, tenants):
    async with database.provider(tenants.a.id) as session:
        with pytest.raises(ValidationFailed) as refused:
            await create_instance(session, kind="focusnfe", name="Focus NFe", acting=STAFF, settings=get_settings(),
                                  config={"token": "t", "prestador_cnpj": "11.222.333/0001-80",
                                          "codigo_municipio": "355030", "aliquota": "120"})
    assert [(e.field, e.message) for e in refused.value.errors] == [
        ("config.prestador_cnpj", "expected a CNPJ: the check digits do not match"),
        ("config.codigo_municipio", "expected the city's IBGE code: 7 digits (São Paulo is 3550308)"),
        ("config.aliquota", "Input should be less than or equal to 100"),
    ]
