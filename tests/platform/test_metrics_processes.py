"""The worker and scheduler commands serve their metrics on BACKOFFICE_METRICS_PORT: ``backoffice worker
--processes 2`` sums its forked processes (prometheus-client's multiprocess mode), a scheduler says it leads."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from backoffice.platform.worker.broker import build_broker, enqueue
from tests.conftest import env_for_subprocess, redis_url, require
from tests.outages import free_port

pytestmark = pytest.mark.postgres_only


def _samples(port: int) -> dict[tuple[str, frozenset], float] | None:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return None
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def _until(port: int, check, seconds: float = 60.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        samples = await asyncio.to_thread(_samples, port)
        if samples is not None and check(samples):
            return samples
        await asyncio.sleep(0.5)
    raise AssertionError(f"the metrics on port {port} never showed what was expected: {samples}")


def _start(command: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "backoffice.web.entry.cli", *command], env=env,
                            stdout=subprocess.DEVNULL, stderr=open(os.environ.get("METRICS_TEST_LOG", os.devnull), "w"),
                            start_new_session=True)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # the main process passes it on to its children
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


async def test_two_worker_processes_are_summed_on_one_port(database, tenants, tmp_path):
    require("redis")
    settings = database.settings.model_copy(update={"broker_url": redis_url(12)})
    port = free_port()
    env = env_for_subprocess(settings) | {"BACKOFFICE_METRICS_PORT": str(port),
                                          "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom")}
    broker = build_broker(settings)  # the worker command's namespace
    broker.flush_all()  # nothing left over from an earlier run on this Redis database
    worker = _start(["worker", "--processes", "2"], env)
    try:
        job = "platform.tenant_census"
        for _ in range(6):
            enqueue(broker, job, tenant_id=tenants.a.id)
        done = await _until(port, lambda s: s.get(("backoffice_job_seconds_count", frozenset({("job", job)}))) == 6)
        assert done.get(("backoffice_job_failures_total", frozenset({("job", job)})), 0) == 0
        # Both processes wrote their own file; the exporter read them all.
        assert len([name for name in os.listdir(tmp_path / "prom") if name.startswith("histogram_")]) >= 1
    finally:
        _stop(worker)
        broker.close()


async def test_a_scheduler_serves_its_leadership(database, tmp_path):
    require("redis")
    settings = database.settings.model_copy(update={"broker_url": redis_url(12)})
    port = free_port()
    scheduler = _start(["scheduler"], env_for_subprocess(settings) | {"BACKOFFICE_METRICS_PORT": str(port)})
    try:
        seen = await _until(port, lambda s: s.get(("backoffice_scheduler_leader", frozenset())) == 1.0
                            and s.get(("backoffice_outbox_sampled_timestamp_seconds", frozenset()), 0) > 0)
        assert seen[("backoffice_outbox_backlog", frozenset())] == 0
    finally:
        _stop(scheduler)
