"""The scheduler process: while it leads, it runs the platform's periodic loops (the outbox relay, the
durable timers, the routines' schedule: declared with :func:`periodic` in ``web/entry/loops.py`` and
registered by the composition root), each at its own pace, each failure logged and retried next tick."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import dramatiq

from backoffice.platform import metrics
from backoffice.platform.db.session import Database
from backoffice.platform.scheduler.leader import Leadership, sleep_or_stop

log = logging.getLogger(__name__)

Loop = Callable[[Database, dramatiq.Broker], Awaitable[None]]


@dataclass(frozen=True)
class LoopSpec:
    name: str
    interval: float
    run: Loop


LOOPS: dict[str, LoopSpec] = {}


def periodic(name: str, *, every: float) -> Callable[[Loop], Loop]:
    """Declare a loop (marks the function; :func:`register_loops` puts it in the schedule)."""
    def declare(fn: Loop) -> Loop:
        fn.loop_spec = LoopSpec(name, every, fn)  # type: ignore[attr-defined]
        return fn

    return declare


def register_loops(*sources: object) -> None:
    """Put the loops declared in each module (or each declared function) in the schedule."""
    for source in sources:
        spec = getattr(source, "loop_spec", None)
        specs = [spec] if isinstance(spec, LoopSpec) else [
            value.loop_spec for value in vars(source).values()
            if callable(value) and isinstance(getattr(value, "loop_spec", None), LoopSpec)]
        if not specs:
            raise ValueError(f"{getattr(source, '__name__', source)!r} declares no loop")
        for loop in specs:
            LOOPS[loop.name] = loop


class Scheduler:
    def __init__(self, database: Database, broker: dramatiq.Broker, *, tick: float = 0.2) -> None:
        self.database = database
        self.broker = broker
        self.tick = tick
        self.leadership = Leadership(database)
        self.stop = asyncio.Event()
        self._next_run: dict[str, float] = {}

    async def run(self) -> None:
        try:
            while not self.stop.is_set():
                if await self._lead():
                    await self._run_due()
                await sleep_or_stop(self.stop, self.tick if self.leadership.is_leader else 2.0)
        finally:
            await self.leadership.release()
            metrics.SCHEDULER_LEADER.set(0)

    async def _lead(self) -> bool:
        try:
            leading = await self.leadership.try_acquire()
        except Exception:
            log.exception("scheduler: cannot reach the database for leadership")
            leading = False
        metrics.SCHEDULER_LEADER.set(int(leading))
        if not leading:
            metrics.forget_outbox()
        return leading

    async def _run_due(self) -> None:
        now = time.monotonic()
        for spec in list(LOOPS.values()):
            if self._next_run.get(spec.name, 0.0) > now:
                continue
            self._next_run[spec.name] = now + spec.interval
            try:
                await spec.run(self.database, self.broker)
            except Exception:
                log.exception("scheduler loop %s failed; it runs again next tick", spec.name)
