"""Process entry points: the embedded all-in-one process, the web server, the worker, the scheduler.
Each composes the platform first (``wiring.compose``)."""

from __future__ import annotations

import asyncio
import glob
import os
import signal
import sys
import tempfile

import dramatiq
import uvicorn
from litestar import Litestar

from backoffice.platform.db.migrate import upgrade
from backoffice.platform.db.session import Database
from backoffice.platform.heap import freeze_startup_objects
from backoffice.platform.logs import configure_logging
from backoffice.platform.metrics import serve
from backoffice.platform.outbox.relay import stop_background as stop_relay
from backoffice.platform.scheduler.service import Scheduler
from backoffice.platform.settings import Settings, get_settings
from backoffice.platform.worker.broker import build_broker
from backoffice.web.app import create_app
from backoffice.web.entry.demo import DEMO_PASSWORD, seed_demo
from backoffice.web.entry.wiring import compose


def server_options(settings: Settings) -> dict:
    """uvicorn's options for every process that serves the app. Its proxy-header handling stays off: left on,
    its default believes X-Forwarded-For from loopback. The app applies BACKOFFICE_TRUSTED_PROXIES itself
    (``web/clients.py``), so the rule is the same under uvicorn, in the embedded process and in the tests."""
    # uvicorn's own logging setup is left out (its loggers reach the structured handler) and so is its access
    # log, which would write query strings: web/request_log.py logs each request by its route template.
    return {"host": settings.host, "port": settings.port, "log_level": settings.log_level.lower(),
            "proxy_headers": False, "log_config": None, "access_log": False}


def run_web(settings: Settings) -> None:
    configure_logging(settings)
    uvicorn.run("backoffice.web.entry.runtime:app_from_env", factory=True, **server_options(settings))


def app_from_env() -> Litestar:
    """Factory for ``uvicorn --factory backoffice.web.entry.runtime:app_from_env`` (the web processes)."""
    configure_logging(get_settings())
    compose()
    app = create_app()
    freeze_startup_objects()  # platform/heap.py: full collections stop walking the app
    return app


def run_worker(settings: Settings, processes: int) -> None:
    """dramatiq's own CLI supervises the worker processes (signals, restarts, graceful shutdown)."""
    argv = [sys.executable, "-m", "dramatiq", "backoffice.web.entry.worker",
            "--processes", str(processes), "--threads", str(settings.worker_threads)]
    if settings.metrics_port:
        # Each forked worker writes its metrics to files in this directory; one extra process serves their sum.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = multiprocess_directory()
        os.environ["BACKOFFICE_METRICS_PORT"] = str(settings.metrics_port)
        argv += ["--fork-function", "backoffice.platform.metrics:serve_worker_metrics"]
    os.execv(sys.executable, argv)


def multiprocess_directory() -> str:
    """The directory of prometheus_client's multiprocess mode: PROMETHEUS_MULTIPROC_DIR when set (emptied of
    a previous run's files, as the library requires), else a new temporary one."""
    chosen = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not chosen:
        return tempfile.mkdtemp(prefix="backoffice-metrics-")
    os.makedirs(chosen, exist_ok=True)
    for stale in glob.glob(os.path.join(chosen, "*.db")):
        os.remove(stale)
    return chosen


def run_scheduler(settings: Settings) -> None:
    configure_logging(settings)
    compose()
    if settings.metrics_port:
        serve(settings.metrics_port)
    freeze_startup_objects()

    async def main() -> None:
        database = Database(settings)
        scheduler = Scheduler(database, build_broker(settings, database=database))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, scheduler.stop.set)
        try:
            await scheduler.run()
        finally:
            await stop_relay()  # before the database it uses goes away
            await database.dispose()

    asyncio.run(main())


def run_embedded(settings: Settings, *, seed: bool = True) -> None:
    """Everything in one process: migrate, seed, then web + in-process broker and worker threads +
    scheduler, all on the SQLite file (or whatever the settings say)."""
    configure_logging(settings)
    compose()
    upgrade(settings)
    logins = []
    if seed:
        async def _seed():
            database = Database(settings)
            try:
                return await seed_demo(database)
            finally:
                await database.dispose()

        logins = asyncio.run(_seed())

    broker = build_broker(settings)
    worker = dramatiq.Worker(broker, worker_threads=settings.worker_threads, worker_timeout=100)
    tasks: list[asyncio.Task] = []

    async def start(app: Litestar) -> None:
        worker.start()
        scheduler = Scheduler(app.state.database, broker)
        app.state.scheduler = scheduler
        tasks.append(asyncio.create_task(scheduler.run(), name="scheduler"))
        base = settings.base_url or f"http://{settings.host}:{settings.port}"
        lines = [f"\nBack-office platform (embedded) running at {base}/", f"  readiness: {base}/readyz"]
        for login in logins:
            # Staff open the console; their first sign-in sets up TOTP (QR code and key shown on the page).
            where = f"staff console {base}/staff/ (TOTP set up at first sign-in)" if login.where == "staff" \
                else f"portal {base}{login.where}"
            lines.append(f"  {login.email:<28} {login.role:<18} {where}")
        if logins:
            lines.append(f"  demo password for every login: {DEMO_PASSWORD}")
            if settings.environment == "demo":  # the page exists only there
                lines.append(f"  demo mailbox (what each company's back office sent): {base}/aurora/demo/mailbox, "
                             f"{base}/vitta/demo/mailbox")
        print("\n".join(lines) + "\n", flush=True)

    async def stop(app: Litestar) -> None:
        app.state.scheduler.stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await stop_relay()
        await asyncio.to_thread(worker.stop)

    app = create_app(settings, broker=broker, on_startup=[start], on_shutdown=[stop])
    freeze_startup_objects()
    uvicorn.run(app, **server_options(settings))
