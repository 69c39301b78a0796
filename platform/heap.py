"""A long-running process's startup objects, out of the garbage collector's way.

By the time a web, worker or scheduler process serves, it has built everything that lives as long as the
process: the modules, the app's routes and schemas, SQLAlchemy's mappers, the compiled templates. Python's
full collection (generation 2) walks every tracked object each time, and it runs every few seconds under
load: in a web process taking events, each one took 120-160 ms, a stall of every request in flight
(measured with ``gc.callbacks`` under ``tests/perf/bench_intake.py``). ``gc.freeze()`` moves the objects
alive at that point to a permanent generation the collector no longer scans: the same collections then
took under 10 ms. Garbage made at startup is collected first, so none of it is kept for good.
"""

from __future__ import annotations

import gc


def freeze_startup_objects() -> None:
    """Call once a process has built its long-lived objects, before it starts serving."""
    gc.collect()
    gc.freeze()
