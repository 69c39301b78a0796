"""The one-command embedded mode, as a newcomer runs it: ``backoffice demo`` in an empty directory, with
nothing configured but the port. It must migrate, seed the two demo tenants, serve, say where and with
which logins, stop cleanly on Ctrl+C, and start again on the same files without seeding twice."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from backoffice.platform.db.session import Database
from backoffice.web.entry.demo import demo_counts
from backoffice.platform.settings import Settings

BACKOFFICE_CLI = str(Path(sys.executable).with_name("backoffice"))
DEMO_LOGINS = ["admin@provider.example", "operator@provider.example", "ana@aurora.example",
               "bruno@aurora.example", "carla@vitta.example"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Demo:
    def __init__(self, workdir: Path, port: int, run: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.stdout_path = workdir.parent / f"stdout-{run}.txt"
        self.stderr_path = workdir.parent / f"stderr-{run}.txt"
        env = {k: v for k, v in os.environ.items() if not k.startswith("BACKOFFICE_")}
        env["BACKOFFICE_PORT"] = str(port)
        with self.stdout_path.open("w") as out, self.stderr_path.open("w") as err:
            self.process = subprocess.Popen([BACKOFFICE_CLI, "demo"], cwd=workdir, env=env, stdout=out, stderr=err,
                                            stdin=subprocess.DEVNULL)

    def output(self) -> tuple[str, str]:
        return self.stdout_path.read_text(), self.stderr_path.read_text()

    def wait_ready(self, seconds: float = 60) -> httpx.Response:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"demo exited {self.process.returncode}: {self.output()[1][-3000:]}"
            try:
                response = httpx.get(f"{self.base}/readyz", timeout=2)
                if response.status_code == 200:
                    return response
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"not ready within {seconds} s: {self.output()[1][-3000:]}")

    def interrupt(self) -> int:
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"demo did not stop on SIGINT: {self.output()[1][-3000:]}") from None

    def stop_if_running(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def test_demo_starts_from_nothing_serves_both_tenants_stops_and_restarts(tmp_path):
    workdir = tmp_path / "empty"
    workdir.mkdir()
    port = _free_port()

    first = Demo(workdir, port, run=1)
    try:
        ready = first.wait_ready()
        assert ready.json()["checks"] == {"database": "ok", "broker": "ok"}
        pages = {slug: httpx.get(f"{first.base}/{slug}/", timeout=5) for slug in ("aurora", "vitta")}
        assert pages["aurora"].status_code == 200 and "Aurora Software" in pages["aurora"].text
        assert pages["vitta"].status_code == 200 and "Vitta Academias" in pages["vitta"].text
        assert first.interrupt() == 0
    finally:
        first.stop_if_running()
    stdout, _ = first.output()
    assert f"{first.base}/" in stdout
    assert all(login in stdout for login in DEMO_LOGINS), stdout
    assert f"{first.base}/aurora/" in stdout and f"{first.base}/vitta/" in stdout
    assert f"{first.base}/aurora/demo/mailbox" in stdout
    assert (workdir / ".backoffice" / "backoffice.sqlite3").exists()

    second = Demo(workdir, port, run=2)  # same files, same port: seeding again must change nothing
    try:
        second.wait_ready()
        assert httpx.get(f"{second.base}/aurora/", timeout=5).status_code == 200
        assert second.interrupt() == 0
    finally:
        second.stop_if_running()
    assert all(login in second.output()[0] for login in DEMO_LOGINS)

    sqlite = (workdir / ".backoffice" / "backoffice.sqlite3").resolve()
    settings = Settings(data_dir=workdir / ".backoffice", database_url=f"sqlite+aiosqlite:///{sqlite}")
    counts = asyncio.run(_counts(settings))
    # The month of activity went in once: its events, by their external ids, are not taken twice.
    assert counts == {"tenants": 2, "staff": 2, "users": 3, "customers": 6, "events": 27}


async def _counts(settings: Settings) -> dict[str, int]:
    database = Database(settings)
    try:
        return await demo_counts(database)
    finally:
        await database.dispose()
