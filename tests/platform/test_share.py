"""Fair turns on a worker's event loop (platform/worker/share.py): a tenant with fewer jobs running goes
first, nobody waits longer than MAX_WAIT, and tenants with as many jobs each never wait for each other."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from backoffice.platform.worker import share
from backoffice.platform.worker.share import jobs_running, running, turn

HEAVY, LIGHT, OTHER = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


async def _job(tenant: uuid.UUID, units: int, done: list[tuple[uuid.UUID, int]], *, unit_seconds: float = 0.0,
               started: asyncio.Event | None = None) -> None:
    async with running(tenant):
        if started is not None:
            started.set()
        for unit in range(units):
            await turn()
            if unit_seconds:
                await asyncio.sleep(unit_seconds)  # a statement's wait: the loop is free meanwhile
            done.append((tenant, unit))


async def test_a_lighter_tenants_job_runs_before_the_heavier_tenants_next_units():
    done: list[tuple[uuid.UUID, int]] = []
    heavy_started = asyncio.Event()
    heavy = [asyncio.create_task(_job(HEAVY, 20, done, unit_seconds=0.002, started=heavy_started)) for _ in range(3)]
    await heavy_started.wait()
    await asyncio.sleep(0)
    light = asyncio.create_task(_job(LIGHT, 5, done, unit_seconds=0.01))
    await asyncio.gather(light, *heavy)

    light_end = max(i for i, (tenant, _) in enumerate(done) if tenant == LIGHT)
    light_start = min(i for i, (tenant, _) in enumerate(done) if tenant == LIGHT)
    # While the light job ran (5 units, each waiting 10 ms on "the database"), the heavy jobs did at most
    # the unit each was in when it came: they gave way at their next turn.
    between = [entry for entry in done[light_start:light_end] if entry[0] == HEAVY]
    assert len(between) <= 3, between
    assert len(done) == 3 * 20 + 5  # nothing lost: every unit ran
    assert jobs_running() == {}


async def test_tenants_with_as_many_jobs_each_never_wait_for_each_other():
    done: list[tuple[uuid.UUID, int]] = []
    started = asyncio.get_running_loop().time()
    await asyncio.gather(_job(HEAVY, 10, done, unit_seconds=0.005), _job(OTHER, 10, done, unit_seconds=0.005))
    # Interleaved: both advance together (one job each), so neither waited for the other to finish.
    first_other = next(i for i, (tenant, _) in enumerate(done) if tenant == OTHER)
    assert first_other < 4
    assert asyncio.get_running_loop().time() - started < share.MAX_WAIT


async def test_a_heavier_tenant_waits_at_most_max_wait_per_turn(monkeypatch):
    monkeypatch.setattr(share, "MAX_WAIT", 0.05)
    done: list[tuple[uuid.UUID, int]] = []
    light_started = asyncio.Event()
    # A light job that stays for a long while (a slow provider): the heavy jobs still advance.
    light = asyncio.create_task(_job(LIGHT, 1, done, unit_seconds=1.0, started=light_started))
    await light_started.wait()
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        await asyncio.gather(_job(HEAVY, 3, done), _job(HEAVY, 3, done))
        elapsed = loop.time() - started
        # 3 turns each, concurrently: about 3 × MAX_WAIT, far less than the light job's second.
        assert 0.1 <= elapsed < 0.5, elapsed
        assert not light.done()
    finally:
        await light
    assert jobs_running() == {}


async def test_a_job_outside_any_tenant_and_a_job_alone_never_wait():
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(100):
        await turn()  # no tenant: a plain yield
    done: list[tuple[uuid.UUID, int]] = []
    await _job(HEAVY, 100, done)
    assert loop.time() - started < 0.2
    assert len(done) == 100


async def test_the_count_leaves_with_a_job_that_fails():
    with pytest.raises(RuntimeError):
        async with running(HEAVY):
            assert jobs_running() == {HEAVY: 1}
            raise RuntimeError("the job failed")
    assert jobs_running() == {}
