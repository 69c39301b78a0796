"""What an idle `backoffice worker` costs, for each poll interval given (dramatiq's worker timeout, in ms).

    .venv/bin/python -m tests.perf.bench_worker_idle 1000 100     # ~1 min

dramatiq's Redis consumers back off when their queue is empty, up to the worker timeout (1,000 ms by default):
a message that arrives after a quiet spell waits up to that long before a worker fetches it. A shorter timeout
cuts that wait and costs CPU while nothing happens; this measures the price (the worker's processes, 20 s
idle after an 8 s boot). Like bench_spine.py it creates (and drops) the database ``bo_perf``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from tests.perf.bench_spine import DB, PY, admin, processes, setup


def cpu_seconds(pid: int) -> float:
    total = 0.0
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    for process in [pid, *map(int, children)]:
        fields = open(f"/proc/{process}/stat").read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


async def main(timeouts: list[str]) -> None:
    await setup(customers_per_load_tenant=10)
    try:
        for timeout in timeouts:
            command = [PY, "-m", "backoffice.web.entry.cli", "worker"]
            with processes(command, extra_env={"dramatiq_worker_timeout": timeout}) as (worker,):
                await asyncio.sleep(8)
                before = cpu_seconds(worker.pid)
                await asyncio.sleep(20)
                used = cpu_seconds(worker.pid) - before
            print(f"worker timeout {timeout} ms: idle worker {100 * used / 20:.1f}% of a core", flush=True)
    finally:
        await admin(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:] or ["1000", "100"]))
