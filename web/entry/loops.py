"""The platform's periodic loops, registered with the scheduler by the composition root (``wiring.py``);
they run in the ``backoffice scheduler`` process and the embedded runtime, while that scheduler leads.

The relay is not a tick of its own: it runs as a long-lived task (lower latency: it wakes on PostgreSQL
notifications and never waits behind another loop), and its loop here only starts it on the first tick
of a leading scheduler and restarts it if it ever died.
"""

from __future__ import annotations

import dramatiq

from backoffice.platform.db.session import Database
from backoffice.platform.outbox.backlog import measure_backlog
from backoffice.platform.outbox.exhausted import give_up_exhausted
from backoffice.platform.outbox.relay import ensure_background
from backoffice.platform.scheduler.service import periodic
from backoffice.platform.timers.service import fire_due_timers
from backoffice.tenants.notifications.digest import send_daily_digests
from backoffice.tenants.routines.schedule import start_due_runs

TIMER_BATCH = 500
TIMER_ROUNDS_PER_TICK = 20  # a backlog drains across ticks instead of starving the other loops


@periodic("outbox.relay", every=5.0)
async def keep_relay_running(database: Database, broker: dramatiq.Broker) -> None:
    ensure_background(database, broker)


@periodic("timers.fire", every=1.0)
async def fire_timers(database: Database, broker: dramatiq.Broker) -> None:
    for _ in range(TIMER_ROUNDS_PER_TICK):
        if await fire_due_timers(database, limit=TIMER_BATCH) < TIMER_BATCH:
            return


@periodic("routines.schedule", every=30.0)
async def scheduled_routines(database: Database, broker: dramatiq.Broker) -> None:
    await start_due_runs(database)


@periodic("outbox.give_up", every=60.0)
async def give_up_on_exhausted_rows(database: Database, broker: dramatiq.Broker) -> None:
    await give_up_exhausted(database)


@periodic("metrics.outbox", every=15.0)
async def outbox_metrics(database: Database, broker: dramatiq.Broker) -> None:
    await measure_backlog(database)


@periodic("notifications.digest", every=300.0)
async def daily_digests(database: Database, broker: dramatiq.Broker) -> None:
    await send_daily_digests(database)
