"""Fair turns on a worker's event loop: a tenant with fewer jobs running goes first.

A worker process runs every job's coroutine on one event loop (dramatiq's AsyncIO middleware). A tenant that
floods the spine has several jobs on that loop at once, each a batch of events processed in memory; a quiet
tenant's job of one event then waits behind their slices at each of its awaits, and its latency grows with
the other tenant's volume (tests/perf/README.md, "fairness"). Capping what a tenant has in flight did not
fix that: the wait is for the loop, not for the queue.

So jobs take turns. Each tenant-scoped job runs inside :func:`running`, which counts the tenant's jobs on
this loop; long jobs call :func:`turn` between two units of work (two events of a wave). At a turn, a job
whose tenant has more jobs here than some other tenant with jobs here gives way: it waits until the lighter
tenants' jobs end, or at most ``MAX_WAIT`` (a job is never held indefinitely, whatever the mix). Tenants with
as many jobs each never wait for one another, and a job alone on the loop never waits at all.

The counts are per event loop and per process: the relay's per-tenant cap keeps the share across processes.
"""

from __future__ import annotations

import asyncio
import contextvars
import uuid
import weakref
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

# Long enough for a quiet tenant's job of a few events (~30 ms unloaded), short enough that the heavier
# tenant keeps moving when lighter jobs follow one another.
MAX_WAIT = 0.25

_tenant: contextvars.ContextVar[uuid.UUID | None] = contextvars.ContextVar("share_tenant", default=None)


@dataclass
class _Loop:
    running: Counter[uuid.UUID] = field(default_factory=Counter)
    waiters: list[asyncio.Future[None]] = field(default_factory=list)

    def lighter_than(self, tenant: uuid.UUID) -> bool:
        mine = self.running[tenant]
        return any(count < mine for other, count in self.running.items() if other != tenant)

    def wake(self) -> None:
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


_loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Loop] = weakref.WeakKeyDictionary()


def _here() -> tuple[asyncio.AbstractEventLoop, _Loop]:
    loop = asyncio.get_running_loop()
    state = _loops.get(loop)
    if state is None:
        state = _loops[loop] = _Loop()
    return loop, state


@asynccontextmanager
async def running(tenant_id: uuid.UUID) -> AsyncIterator[None]:
    """Count this job as one of its tenant's jobs on this loop while the block runs."""
    _, state = _here()
    state.running[tenant_id] += 1
    token = _tenant.set(tenant_id)
    try:
        yield
    finally:
        _tenant.reset(token)
        state.running[tenant_id] -= 1
        if state.running[tenant_id] <= 0:
            del state.running[tenant_id]
        state.wake()  # a heavier tenant's job may go on now (or count again)


def jobs_running() -> dict[uuid.UUID, int]:
    """Each tenant's jobs on this loop (for tests and diagnostics)."""
    return dict(_here()[1].running)


async def turn() -> None:
    """Between two units of a long job: let the loop run others, and give way to lighter tenants' jobs."""
    await asyncio.sleep(0)
    tenant = _tenant.get()
    if tenant is None:
        return
    loop, state = _here()
    if not state.lighter_than(tenant):
        return
    deadline = loop.time() + MAX_WAIT
    while state.lighter_than(tenant):
        left = deadline - loop.time()
        if left <= 0:
            return
        waiter = loop.create_future()
        state.waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, left)
        except TimeoutError:
            return
