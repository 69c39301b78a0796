"""``backoffice routines``: an operator starts a run and follows it to its outcome while the spine's workers
do the items (the CLI only queues), retries its failed items, pauses and resumes, and reads the status
and the runs; every action audited as ``cli:<os user>``, the exit code telling how the run went.

The commands run in this process (click's runner, in a thread with its own event loop) so that the test's
own routine is in the catalogue and the spine's worker threads work its items; the installed entry point
is run as a subprocess once, as operators run it."""

from __future__ import annotations

import asyncio

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from backoffice.platform.audit.models import AuditEntry
from backoffice.web.entry.cli import main
from backoffice.platform.settings import get_settings
from backoffice.tenants.routines.models import RoutineRun, RunStatus, Trigger
from tests.conftest import env_for_subprocess
from tests.web.entry.test_cli import _cli
from tests.tenants.conftest import spine  # noqa: F401  (the running pipeline fixture)
from tests.tenants.routines.scripted import registered, scripted

REFUSED = "POST /v3/payments: 400 invalid_customer: CPF inválido"


ROUTINE, REFUSING = scripted("test_cli_billing", refusal=REFUSED, notify=False)


@pytest.fixture(autouse=True)
def routine():
    REFUSING.clear()
    with registered(ROUTINE):
        yield ROUTINE


async def backoffice(spine, *args: str) -> Result:  # noqa: F811
    """Run the command while the spine relays and works what it queues, until the command exits."""
    env = env_for_subprocess(spine.database.settings)
    get_settings.cache_clear()  # the command reads its settings from this environment, as a process would
    try:
        command = asyncio.create_task(asyncio.to_thread(CliRunner().invoke, main, list(args), env=env))
        while not command.done():
            await spine.settle()
            await asyncio.sleep(0.02)
        result = command.result()
    finally:
        get_settings.cache_clear()
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


async def test_start_follows_the_run_to_its_outcome_and_retry_finishes_it(spine, database, tenants):  # noqa: F811
    a, b = tenants.a, tenants.b
    REFUSING.add("Maria Silva")
    started = await backoffice(spine, "routines", "start", "alfa", ROUTINE.name, "--period", "2026-11",
                               "--reason", "month close", "--follow", "--interval", "0.05")
    assert started.exit_code == 1, started.output  # partial
    out = started.output
    assert out.startswith("queued run ") and "Test billing for 2026-11 (manual)" in out
    assert "Test billing 2026-11: charges" in out  # the progress bar's label (a terminal gets the bar itself)
    assert "2/2 settled, 1 failed" in out
    assert "Test billing for 2026-11: partial, 1 done, 1 failed of 2" in out
    assert f"  failed: Maria Silva, 2026-11: {REFUSED}" in out
    async with database.tenant(a.id) as session:
        [run] = (await session.execute(select(RoutineRun))).scalars().all()
    assert (run.status, run.trigger, run.requested_by.startswith("cli:")) == (RunStatus.PARTIAL, Trigger.MANUAL, True)
    async with database.tenant(b.id) as session:
        assert (await session.execute(select(RoutineRun))).first() is None  # Beta untouched

    REFUSING.clear()
    retried = await backoffice(spine, "routines", "retry", "alfa", str(run.id), "--reason", "CPF fixed",
                               "--follow", "--interval", "0.05")
    assert retried.exit_code == 0, retried.output
    assert "(retry)" in retried.output and "1/1 settled, 0 failed" in retried.output
    assert "Test billing for 2026-11: succeeded, 1 done, 0 failed of 1" in retried.output
    async with database.tenant(a.id) as session:
        retry_run = (await session.execute(select(RoutineRun).where(RoutineRun.trigger == Trigger.RETRY))).scalar_one()
    nothing = await backoffice(spine, "routines", "retry", "alfa", str(retry_run.id), "--no-follow")
    assert nothing.exit_code == 2 and "error: run:" in nothing.output and "no failed items" in nothing.output

    async with database.system() as session:
        audit = (await session.execute(select(AuditEntry.action, AuditEntry.actor_type, AuditEntry.reason)
                                       .where(AuditEntry.action.like("routine.%")))).all()
    assert ("routine.manual", "cli", "month close") in audit and ("routine.retry", "cli", "CPF fixed") in audit


async def test_pause_resume_refusals_and_listings(spine, database, tenants):  # noqa: F811
    paused = await backoffice(spine, "routines", "pause", "alfa", ROUTINE.name, "--reason",
                              "gateway migration")
    assert paused.exit_code == 0 and f"paused {ROUTINE.name} for alfa" in paused.output
    held = await backoffice(spine, "routines", "start", "alfa", ROUTINE.name, "--no-follow")
    assert held.exit_code == 2 and "error: routine:" in held.output and "paused" in held.output
    listed = await backoffice(spine, "routines", "list", "alfa")
    assert listed.exit_code == 0, listed.output
    line = next(row for row in listed.output.splitlines() if row.startswith(ROUTINE.name))
    assert "paused" in line and "monthly on day 1 at 06:00" in line
    assert "gateway migration" in listed.output and "(times in America/Sao_Paulo)" in listed.output
    resumed = await backoffice(spine, "routines", "resume", "alfa", ROUTINE.name)
    assert resumed.exit_code == 0

    queued = await backoffice(spine, "routines", "start", "alfa", ROUTINE.name, "--no-follow")
    assert queued.exit_code == 0 and "for 2026-11 (manual)" in queued.output
    await spine.settle()
    bad = await backoffice(spine, "routines", "start", "alfa", ROUTINE.name, "--period", "2026-13",
                           "--no-follow")
    assert bad.exit_code == 2 and "error: period:" in bad.output
    unknown = await backoffice(spine, "routines", "start", "alfa", "payroll", "--no-follow")
    assert unknown.exit_code == 2 and "error: routine:" in unknown.output
    nobody = await backoffice(spine, "routines", "list", "gama")
    assert nobody.exit_code == 2 and "not found" in nobody.output

    runs = await backoffice(spine, "routines", "runs", "alfa", "--routine", ROUTINE.name)
    assert runs.exit_code == 0
    [row] = [r for r in runs.output.splitlines()[1:] if r.strip()]
    assert "2026-11" in row and "succeeded" in row and "2 done, 0 failed of 2" in row
    assert (await backoffice(spine, "routines", "runs", "beta")).output.splitlines()[1:] == []
    failed_only = await backoffice(spine, "routines", "runs", "alfa", "--status", "failed")
    assert failed_only.output.splitlines()[1:] == []


@pytest.mark.postgres_only
async def test_the_installed_command_lists_a_tenants_routines(database, tenants):
    listed = await _cli(database, "routines", "list", "beta")
    assert listed.code == 0, listed.err
    assert listed.out.startswith("ROUTINE") and "dunning_sweep" in listed.out and "daily at 06:00" in listed.out
