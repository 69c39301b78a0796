"""The real services the suite runs against: found, started if installed but stopped, or failed loudly.

With CI=true an unreachable service fails the run; elsewhere the tests that need it are skipped with
the reason printed, so a laptop without PostgreSQL can still run the SQLite half.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

PG_HOST, PG_PORT = "127.0.0.1", int(os.environ.get("BACKOFFICE_TEST_PG_PORT", "5432"))
REDIS_HOST, REDIS_PORT = "127.0.0.1", int(os.environ.get("BACKOFFICE_TEST_REDIS_PORT", "6379"))
PG_ADMIN_USER = os.environ.get("BACKOFFICE_TEST_PG_ADMIN", "postgres")


def reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _start_postgres() -> None:
    if not shutil.which("pg_ctlcluster") or not Path("/etc/postgresql").exists():
        return
    for version in sorted(os.listdir("/etc/postgresql")):
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
                       check=False, capture_output=True, timeout=60)


def _start_redis() -> None:
    if not shutil.which("redis-server"):
        return
    subprocess.run(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", str(REDIS_PORT),
                    "--save", "", "--appendonly", "no"], check=False, capture_output=True, timeout=30)


def ensure(name: str) -> str | None:
    """Returns None when the service is up, else why it is not."""
    host, port, start = {
        "postgres": (PG_HOST, PG_PORT, _start_postgres),
        "redis": (REDIS_HOST, REDIS_PORT, _start_redis),
    }[name]
    if reachable(host, port):
        return None
    start()
    for _ in range(30):
        if reachable(host, port):
            return None
        time.sleep(0.5)
    return f"{name} is not reachable on {host}:{port} and could not be started"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}
