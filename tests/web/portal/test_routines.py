"""The front office's routines page on runs from the running spine: each routine's schedule, a paused
notice, the last runs as sentences with the company's numbers and time (pt-BR by default, English on
request), a progress bar while a run is under way, the failed items with the provider's words and a link
to the customer; another company's run is a 404."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from litestar.testing import AsyncTestClient

from backoffice.platform.audit.service import Actor
from backoffice.tenants.routines import engine
from backoffice.tenants.routines.catalogue import CATALOGUE
from backoffice.tenants.routines.models import RoutineRun, RunStatus, Trigger
from backoffice.web.app import create_app
from backoffice.web.portal.routines import describe_run
from tests.tenants.conftest import new_customer, spine  # noqa: F401  (the running pipeline fixture)
from tests.tenants.routines.scripted import registered, scripted
from tests.web.portal.conftest import Browser

STAFF = Actor(type="staff", label="ana@provider.example", id="ana")
REFUSED = "Asaas: o CPF do cliente é inválido (invalid_cpfCnpj)"


ROUTINE, REFUSING = scripted("test_portal_billing", refusal=REFUSED, notify=False, label="{name} — Plano Pro",
                             title={"pt-BR": "Faturamento", "en": "Billing"})
REFUSING.add("Maria Silva")


@pytest.fixture(autouse=True)
def routine():
    with registered(ROUTINE):
        yield ROUTINE


def test_a_run_reads_as_a_sentence_in_each_locale():
    finished = datetime(2026, 12, 1, 9, 12, tzinfo=UTC)  # 06:12 in São Paulo
    run = RoutineRun(routine=ROUTINE.name, period="2026-11", trigger=Trigger.SCHEDULE, status=RunStatus.PARTIAL,
                     items_total=1243, items_done=1240, items_failed=3, finished_at=finished)
    same_day, next_day = datetime(2026, 12, 1, 15, tzinfo=UTC), datetime(2026, 12, 2, 15, tzinfo=UTC)
    tz = "America/Sao_Paulo"
    assert describe_run(run, ROUTINE, "pt-BR", tz, same_day).text == \
        "Faturamento de novembro: 1.240 cobranças, 3 com falha, concluído às 06:12"
    assert describe_run(run, ROUTINE, "en", tz, same_day).text == \
        "Billing for November: 1,240 charges, 3 failed, done at 06:12"
    assert describe_run(run, ROUTINE, "pt-BR", tz, next_day).sentence == \
        "1.240 cobranças, 3 com falha, concluído em 01/12/2026 às 06:12"
    assert describe_run(run, ROUTINE, "en", "UTC", same_day).sentence.endswith("done at 09:12")
    last_year = datetime(2027, 2, 1, tzinfo=UTC)
    assert describe_run(run, ROUTINE, "pt-BR", tz, last_year).heading == "Faturamento de novembro de 2026"
    running = RoutineRun(routine=ROUTINE.name, period="2026-12", trigger=Trigger.MANUAL, status=RunStatus.RUNNING,
                         items_total=2000, items_done=1500, items_failed=0)
    line = describe_run(running, ROUTINE, "pt-BR", tz, same_day)
    assert (line.text, line.active, line.settled) == ("Faturamento de dezembro: em andamento: 1.500 de 2.000 cobranças",
                                                      True, 1500)
    failed = RoutineRun(routine=ROUTINE.name, period="2026-11", trigger=Trigger.SCHEDULE, status=RunStatus.FAILED,
                        items_total=0, items_done=0, items_failed=0, finished_at=finished,
                        error="no payment gateway connector configured for this company (asaas)")
    assert describe_run(failed, ROUTINE, "en", tz, same_day).sentence == \
        "failed at 06:12: no payment gateway connector configured for this company (asaas)"


async def test_the_front_office_reads_its_routines_and_a_runs_failures(spine, database, tenants):  # noqa: F811
    a, b = spine.tenants.a, spine.tenants.b
    for name, tax_id in (("Padaria Estrela", "04.252.011/0001-10"), ("Oficina Sul", "11.444.777/0001-61")):
        await new_customer(database, a.id, a.admin_id, name=name, tax_id=tax_id)
    async with database.provider(a.id) as session:
        finished = await engine.start_run(session, ROUTINE.name, period="2026-11", actor=STAFF)
    async with database.provider(b.id) as session:
        theirs = await engine.start_run(session, ROUTINE.name, period="2026-11", actor=STAFF)
    await spine.settle()
    async with database.provider(a.id) as session:
        # A run under way, as the workers leave it halfway; and the routine paused by the back office.
        session.add(RoutineRun(routine=ROUTINE.name, period="2026-10", trigger=Trigger.RETRY, status=RunStatus.RUNNING,
                               requested_by=STAFF.label, items_total=40, items_done=12, items_failed=1, summary={}))
        await engine.pause(session, ROUTINE.name, actor=STAFF, reason="troca de gateway")

    async with AsyncTestClient(app=create_app(database.settings)) as client:
        browser = Browser(client)
        assert (await browser.login("/alfa", "member@alfa.example")).status_code == 303
        listing = await browser.get("/alfa/routines")
        assert listing.status_code == 200
        text = listing.text
        for expected in ('href="/alfa/routines" aria-current="page"', "Rotinas", "Faturamento",
                         "Todo mês no dia 1 às 06:00 (America/Sao_Paulo)",
                         "Faturamento de novembro: 3 cobranças, 1 com falha, concluído às 12:00",
                         "Faturamento de outubro: em andamento: 13 de 40 cobranças, 1 com falha",
                         '<progress max="40" value="13"', "Pausada por ana@provider.example", "troca de gateway",
                         f'href="/alfa/routines/runs/{finished.id}"', "Verificação de inadimplência"):
            assert expected in text, expected
        assert str(theirs.id) not in text
        for other in CATALOGUE.values():  # no tenant here has a connector: routines that need one say so
            if other.requires:
                assert f"precisa de um conector ({', '.join(other.requires)})" in text, other.name

        detail = await browser.get(f"/alfa/routines/runs/{finished.id}")
        assert detail.status_code == 200
        for expected in ("Faturamento de novembro", "3 cobranças, 1 com falha, concluído às 12:00",
                         "Itens com falha (1)", REFUSED, "Maria Silva — Plano Pro",
                         f'href="/alfa/customers/{a.customer_ids[1]}"'):
            assert expected in detail.text, expected
        assert "Casa do Pão" not in detail.text  # done items are not failures

        # Another company's run, a missing one and a malformed id: not found, nothing of Beta's shown.
        for run_id in (theirs.id, uuid.uuid4(), "not-a-uuid"):
            response = await browser.get(f"/alfa/routines/runs/{run_id}")
            assert response.status_code == 404 and "Beta" not in response.text, run_id
        refused = await browser.get(f"/beta/routines/runs/{theirs.id}")
        assert refused.status_code == 303 and refused.headers["location"].startswith("/beta/login")
        assert (await browser.get("/beta/routines")).status_code == 303

        switched = await browser.post_form("/alfa/routines", "/alfa/locale", {"locale": "en", "next": "/routines"})
        assert switched.status_code == 303
        english = await browser.get("/alfa/routines")
        for expected in ("Routines", "Billing for November: 3 charges, 1 failed, done at 12:00",
                         "Billing for October: in progress: 13 of 40 charges, 1 failed",
                         "Every month on day 1 at 06:00 (America/Sao_Paulo)", "Paused by ana@provider.example"):
            assert expected in english.text, expected
        detail_en = await browser.get(f"/alfa/routines/runs/{finished.id}")
        assert "Failed items (1)" in detail_en.text and REFUSED in detail_en.text
