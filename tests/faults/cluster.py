"""A private production shape for the fault suite: its own PostgreSQL cluster and Redis on free loopback
ports under a temp dir, and the platform's processes run as deploy/compose.yaml runs them, restarted by a
small supervisor when they die (compose's ``restart: always``).

Nothing here touches the machine's PostgreSQL (5432) or Redis (6379): the cluster is ``initdb``'d afresh
(as the unprivileged ``postgres`` OS user, which PostgreSQL requires), so killing or restarting it only
ever hits this run. Every process and the temp dir go away in ``close()``, which is safe to call after any
failure, and twice.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]
PG_OS_USER = os.environ.get("BACKOFFICE_FAULTS_PG_USER", "postgres")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def reachable(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def pg_bin() -> Path | None:
    """The newest PostgreSQL server binaries on the machine (Debian puts them under /usr/lib/postgresql)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def missing_tools() -> str | None:
    """Why this machine cannot run the fault suite, or None."""
    if pg_bin() is None:
        return "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin"
    if not shutil.which("redis-server"):
        return "redis-server is not installed"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(PG_OS_USER)
        except KeyError:
            return f"initdb must run as an unprivileged user and there is no {PG_OS_USER!r} OS user"
    return None


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise TimeoutError(f"{what} did not happen within {timeout:.0f} s")


class Postgres:
    """A throwaway cluster: trust authentication on loopback only, the superuser ``postgres``."""

    def __init__(self, root: Path) -> None:
        self.bin = pg_bin()
        self.dir = root / "pg"
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self.port = free_port()
        self._as_user = {"user": PG_OS_USER} if os.geteuid() == 0 else {}

    def _run(self, *args: str, timeout: float = 120) -> None:
        result = subprocess.run([str(self.bin / args[0]), *args[1:]], capture_output=True, text=True,
                                timeout=timeout, cwd=self.dir, check=False, **self._as_user)
        if result.returncode:
            raise RuntimeError(f"{' '.join(args[:2])} failed ({result.returncode}): {result.stderr or result.stdout}"
                               f"\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def init(self) -> None:
        self.dir.mkdir(parents=True)
        if self._as_user:
            shutil.chown(self.dir, PG_OS_USER, PG_OS_USER)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--locale=C.UTF-8", "--no-instructions")
        # Loopback TCP only, our own socket dir, no fsync (the OS never crashes here; an immediate restart
        # still replays the WAL), commits durable as in production (synchronous_commit stays on).
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                       f"unix_socket_directories = '{self.dir}'\nfsync = off\nfull_page_writes = off\n"
                       "max_connections = 300\nshared_buffers = 128MB\nlog_min_messages = warning\n")

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")

    def restart_immediate(self) -> None:
        """``pg_ctl restart -m immediate``: every backend dies at once, recovery replays the WAL."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-m", "immediate",
                  "restart")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "-t", "30", "stop", timeout=40)
            except (RuntimeError, subprocess.TimeoutExpired):
                pid_line = (self.data / "postmaster.pid").read_text().splitlines()[:1]
                if pid_line and pid_line[0].isdigit():
                    try:
                        os.kill(int(pid_line[0]), signal.SIGKILL)
                    except ProcessLookupError:
                        pass

    def url(self, user: str, database: str = "backoffice") -> str:
        return f"postgresql+asyncpg://{user}@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str = "backoffice") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"


class Redis:
    """A Redis without persistence: a restart loses every queued message, as a Redis pod rescheduled
    without its volume would. Recovery must come from the outbox (leases), not from Redis."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "redis"
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.log = self.dir / "redis.log"

    def start(self) -> None:
        self.dir.mkdir(exist_ok=True)
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.dir), "--logfile", str(self.log)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_until(lambda: reachable(self.port), 20, "redis-server start")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"


@dataclass
class Service:
    name: str
    argv: list[str]
    process: subprocess.Popen | None = None
    restarts: int = 0
    log: Path | None = None
    wanted: bool = True


@dataclass
class Supervisor:
    """Runs the platform's processes and restarts any that dies, one second later, like a container
    runtime would. ``kill9`` is the fault; the restart is the supervisor's."""

    env: dict[str, str]
    logs: Path
    services: dict[str, Service] = field(default_factory=dict)
    events: list[tuple[float, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None

    def add(self, name: str, *args: str) -> Service:
        service = Service(name, [sys.executable, "-m", "backoffice.web.entry.cli", *args], log=self.logs / f"{name}.log")
        self.services[name] = service
        self._spawn(service)
        return service

    def _spawn(self, service: Service) -> None:
        with open(service.log, "ab") as log:
            service.process = subprocess.Popen(service.argv, env=self.env, cwd=ROOT, stdout=log, stderr=log,
                                               start_new_session=True)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.25):
            with self._lock:
                for service in self.services.values():
                    if service.wanted and service.process and service.process.poll() is not None:
                        self.events.append((time.monotonic(), f"{service.name} exited {service.process.returncode}"))
                        time.sleep(1.0)
                        service.restarts += 1
                        self._spawn(service)

    def pid(self, name: str) -> int:
        return self.services[name].process.pid

    def kill9(self, pid: int) -> None:
        os.kill(pid, signal.SIGKILL)

    def worker_processes(self) -> list[int]:
        """The forked dramatiq worker processes of every worker service."""
        return sorted(pid for name in self.services if name.startswith("worker") for pid in self.children(name))

    def children(self, name: str) -> list[int]:
        """The worker processes dramatiq forked (the CLI's main process only supervises them)."""
        parent = self.pid(name)
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == parent:
                    pids.append(int(entry.name))
        return sorted(pids)

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        with self._lock:
            for service in self.services.values():
                service.wanted = False
                if service.process and service.process.poll() is None:
                    try:
                        os.killpg(service.process.pid, signal.SIGTERM)
                    except ProcessLookupError:
                        pass
            for service in self.services.values():
                if service.process is None:
                    continue
                try:
                    service.process.wait(15)
                except subprocess.TimeoutExpired:
                    pass
                try:  # the group: dramatiq's forked workers too
                    os.killpg(service.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        pass
    return inodes


def pid_owning_local_port(port: int, candidates: list[int]) -> int | None:
    """Which of ``candidates`` owns the TCP socket bound locally to ``port`` (a database client's end)."""
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if int(parts[1].rsplit(":", 1)[1], 16) == port:
                inode = parts[9]
                break
        if inode:
            break
    if inode is None:
        return None
    for pid in candidates:
        if inode in socket_inodes(pid):
            return pid
    return None


class Cluster:
    """The whole private shape: temp dir, PostgreSQL, Redis, and the environment every process gets."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="bo-faults-"))
        self.root.chmod(0o755)  # the postgres OS user must reach its data dir below
        self.logs = self.root / "logs"
        self.logs.mkdir()
        self.pg = Postgres(self.root)
        self.redis = Redis(self.root)
        self.web_port = free_port()
        self.supervisor: Supervisor | None = None
        self.secret_key = "faults-" + "k" * 40
        self.secrets_keys = Fernet.generate_key().decode()

    def start_services(self) -> None:
        self.pg.init()
        self.pg.start()
        subprocess.run([str(self.pg.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.pg.port), "-U", "postgres",
                        "-d", "postgres", "-c", "CREATE DATABASE backoffice"], check=True, capture_output=True,
                       timeout=60)
        self.redis.start()

    def env(self) -> dict[str, str]:
        """What production requires (README, Configuration), for this shape."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("BACKOFFICE_")}
        env.update({
            "BACKOFFICE_DATABASE_URL": self.pg.url("backoffice_app"),
            "BACKOFFICE_SYSTEM_DATABASE_URL": self.pg.url("backoffice_system"),
            "BACKOFFICE_MIGRATION_DATABASE_URL": self.pg.url("postgres"),
            "BACKOFFICE_BROKER_URL": self.redis.url(0),
            "BACKOFFICE_REDIS_URL": self.redis.url(1),
            "BACKOFFICE_SECRET_KEY": self.secret_key,
            "BACKOFFICE_SECRETS_KEYS": self.secrets_keys,
            "BACKOFFICE_HOST": "127.0.0.1",
            "BACKOFFICE_PORT": str(self.web_port),
            "BACKOFFICE_BASE_URL": f"http://127.0.0.1:{self.web_port}",
            # The recorders (tenant platform, webhooks, SMTP, Asaas) listen on loopback.
            "BACKOFFICE_ALLOW_PRIVATE_TARGETS": "true",
            "BACKOFFICE_DATA_DIR": str(self.root / "data"),
            "BACKOFFICE_DB_POOL_SIZE": "5",
            "BACKOFFICE_WORKER_THREADS": "4",
            "BACKOFFICE_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        })
        return env

    def settings(self):
        from backoffice.platform.settings import Settings

        return Settings(database_url=self.pg.url("backoffice_app"), system_database_url=self.pg.url("backoffice_system"),
                        migration_database_url=self.pg.url("postgres"), broker_url=self.redis.url(0),
                        redis_url=self.redis.url(1), secret_key=self.secret_key, secrets_keys=self.secrets_keys,
                        allow_private_targets=True, data_dir=self.root / "data", db_pool_size=3)

    def migrate(self) -> None:
        result = subprocess.run([sys.executable, "-m", "backoffice.web.entry.cli", "migrate"], env=self.env(), cwd=ROOT,
                                capture_output=True, text=True, timeout=300, check=False)
        if result.returncode:
            raise RuntimeError(f"backoffice migrate failed: {result.stderr[-3000:]}")

    def start_platform(self) -> Supervisor:
        self.supervisor = Supervisor(self.env(), self.logs)
        self.supervisor.add("web", "web")
        # Two worker containers of one process each, not one of two: dramatiq's CLI stops every process it
        # forked when one of them dies, so killing a process of a two-process worker took both down until
        # the restart, and the target (a crashed job's effects done within 60 s *with a worker still
        # running*) was measured with no worker at all. Scale-out runs more worker containers anyway.
        for n in (1, 2):
            self.supervisor.add(f"worker-{n}", "worker", "--processes", "1")
        self.supervisor.add("scheduler-1", "scheduler")
        self.supervisor.add("scheduler-2", "scheduler")
        self.supervisor.start()
        return self.supervisor

    def log_tails(self, lines: int = 15) -> str:
        out = []
        for path in sorted(self.logs.glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {path.name} (last {len(text)} lines)\n" + "\n".join(text))
        return "\n".join(out)

    def close(self) -> None:
        if self.supervisor:
            self.supervisor.stop()
        self.redis.kill()
        self.pg.stop()
        keep = os.environ.get("BACKOFFICE_FAULTS_KEEP")
        if keep:
            print(f"fault suite: kept {self.root} (BACKOFFICE_FAULTS_KEEP)")
        else:
            shutil.rmtree(self.root, ignore_errors=True)
