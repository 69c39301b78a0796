"""A Redis and a PostgreSQL of the test's own, on free loopback ports, that the test can stop and start
again: outages without touching the shared servers. PostgreSQL runs as the ``postgres`` OS user (initdb
refuses root) in a temporary directory."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(port: int, up: bool, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                reachable = True
        except OSError:
            reachable = False
        if reachable == up:
            return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} still {'down' if up else 'up'} after {seconds} s")


class ThrowawayRedis:
    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> ThrowawayRedis:
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait(self.port, up=True)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None
            _wait(self.port, up=False)


class ThrowawayPostgres:
    """``initdb`` once, then ``pg_ctl start``/``stop -m immediate`` as often as the test likes."""

    USER = "postgres"

    def __init__(self, root: Path | None = None) -> None:
        # Not under pytest's tmp_path: its parents are root's alone, and the server runs as ``postgres``.
        self.root = root or Path(tempfile.mkdtemp(prefix="bo-outage-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.bin = Path(shutil.which("pg_ctl") or "pg_ctl").parent

    def _run(self, *args: str) -> None:
        owner = pwd.getpwnam(self.USER)

        def as_postgres() -> None:
            os.setgid(owner.pw_gid)
            os.setuid(owner.pw_uid)

        done = subprocess.run(list(args), capture_output=True, text=True, timeout=120,
                              preexec_fn=as_postgres if os.geteuid() == 0 else None)
        if done.returncode:
            raise RuntimeError(f"{Path(args[0]).name} failed ({done.returncode}): {done.stderr or done.stdout}")

    def init(self) -> ThrowawayPostgres:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            owner = pwd.getpwnam(self.USER)
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", self.USER, "--auth=trust", "-E", "UTF8",
                  "--no-sync")
        return self

    def start(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"), "-w", "-o",
                  f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
        _wait(self.port, up=True)

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        _wait(self.port, up=False)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str, user: str) -> str:
        return f"postgresql+asyncpg://{user}@127.0.0.1:{self.port}/{database}"
