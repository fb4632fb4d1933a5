"""The private stack the fault suite breaks: its own PostgreSQL cluster (with PostGIS), its own Redis, gunicorn, a
Celery worker and Celery beat, all on ports of their own (FAULTS_PG_PORT, FAULTS_REDIS_PORT, FAULTS_WEB_PORT).

Nothing here touches the services of `make run` and `make test`: the suite stops, freezes and empties its own
PostgreSQL and Redis, so sharing theirs would break everyone else's work.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg2
import redis
import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in each child before exec: if the test run itself is killed, its processes do not outlive it."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


# A dependency or process of the stack not answering (yet): worth waiting for. Anything else (a failed check of a
# response) is raised at once.
UNREACHABLE = (requests.ConnectionError, requests.Timeout, psycopg2.OperationalError, redis.ConnectionError,
               redis.TimeoutError)  # fmt: skip


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.2):
    """Poll until `predicate()` is truthy; returns its value. Fails naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except UNREACHABLE:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


def _pg_bin() -> Path:
    """The newest installed PostgreSQL that has PostGIS next to it (as ops/lib.sh picks it)."""
    versions = sorted(
        (int(path.name) for path in Path("/usr/lib/postgresql").iterdir() if path.name.isdigit()), reverse=True
    )
    for version in versions:
        if Path(f"/usr/share/postgresql/{version}/extension/postgis.control").exists():
            return Path(f"/usr/lib/postgresql/{version}/bin")
    raise RuntimeError("no PostgreSQL with PostGIS installed (run ops/bootstrap.sh)")


class Postgres:
    """A throw-away cluster. PostgreSQL refuses to run as root, so as root it belongs to the `postgres` system user
    (as in ops/lib.sh), in a directory of its own under /var/tmp that user can reach whatever the checkout's path."""

    HOME_PREFIX = "servicearea-faults-pg-"

    def __init__(self, port: int, password: str):
        self.port = port
        self.password = password
        self.as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.bin = _pg_bin()
        self._remove_leftovers()
        self.home = Path(tempfile.mkdtemp(prefix=self.HOME_PREFIX, dir="/var/tmp"))
        if self.as_owner:
            shutil.chown(self.home, "postgres", "postgres")
        self.data = self.home / "data"
        self.log = self.home / "postgresql.log"

    def _remove_leftovers(self) -> None:
        """Clusters of earlier runs that were killed before they could clean up (they would hold the port)."""
        for home in Path("/var/tmp").glob(f"{self.HOME_PREFIX}*"):
            if (home / "data" / "postmaster.pid").exists():
                subprocess.run([*self.as_owner, str(self.bin / "pg_ctl"), "-D", str(home / "data"), "-m", "immediate",
                                "-w", "stop"], capture_output=True)  # fmt: skip
            shutil.rmtree(home, ignore_errors=True)

    def _run(self, *argv: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run([*self.as_owner, *argv], check=True, capture_output=True, text=True, **kwargs)

    def create(self) -> None:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8",
                  "--auth-local=trust", "--auth-host=scram-sha-256")  # fmt: skip
        settings = (
            f"listen_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{self.home}'\n"
            "max_connections = 100\nshared_buffers = 64MB\n"
            # Throw-away data: durability buys nothing here, and the machine is shared.
            "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
        )
        self._run("tee", "-a", str(self.data / "postgresql.conf"), input=settings)
        self.start()
        self.psql("postgres", f"CREATE ROLE servicearea LOGIN PASSWORD '{self.password}'")
        self.psql("postgres", "CREATE DATABASE servicearea OWNER servicearea")
        self.psql("servicearea", "CREATE EXTENSION postgis")

    def psql(self, database: str, sql: str) -> str:
        return self._run(
            str(self.bin / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(self.home), "-p", str(self.port),
            "-U", "postgres", "-d", database, "-At", "-c", sql,
        ).stdout  # fmt: skip

    def start(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        status = subprocess.run([*self.as_owner, str(self.bin / "pg_ctl"), "-D", str(self.data), "status"],
                                capture_output=True)  # fmt: skip
        return status.returncode == 0

    def destroy(self) -> None:
        if self.data.exists() and self.running():
            self.stop("immediate")
        shutil.rmtree(self.home, ignore_errors=True)

    def url(self) -> str:
        return f"postgis://servicearea:{self.password}@127.0.0.1:{self.port}/servicearea"

    def connect(self):
        return psycopg2.connect(
            host="127.0.0.1", port=self.port, user="servicearea", password=self.password, dbname="servicearea",
            connect_timeout=3,
        )  # fmt: skip


class Process:
    """One long-running process of the stack, its output in a log file of its own."""

    def __init__(self, name: str, argv: list[str], env: dict, log: Path):
        self.name, self.argv, self.env, self.log = name, argv, env, log
        self.popen: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("a") as out:
            out.write(f"\n===== started {time.strftime('%H:%M:%S')}: {' '.join(self.argv)}\n")
            out.flush()
            self.popen = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                          preexec_fn=_die_with_parent)  # fmt: skip

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, signum: int) -> None:
        os.kill(self.popen.pid, signum)

    def stop(self, timeout: float = 20) -> None:
        if not self.alive():
            return
        self.popen.terminate()
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()

    def children(self) -> list[int]:
        """Pids of the process's direct children (the pool processes of a Celery worker)."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # Fields after the command name, which may contain spaces and parentheses.
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[1]) == self.pid:
                found.append(int(entry.name))
        return sorted(found)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


class Redis:
    """A private Redis without persistence, like every Redis of the project: a restart comes back empty."""

    def __init__(self, port: int, password: str, log: Path):
        self.port, self.password, self.log = port, password, log
        self.process: Process | None = None

    def start(self) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--requirepass", self.password,
                "--save", "", "--appendonly", "no", "--maxmemory-policy", "noeviction", "--databases", "16",
                "--dir", str(self.log.parent)]  # fmt: skip
        self.process = Process("redis", argv, dict(os.environ), self.log)
        self.process.start()
        wait_until(lambda: self.client().ping(), 10, "Redis answering")

    def stop(self) -> None:
        if self.process is not None and self.process.alive():
            self.resume()  # a frozen Redis cannot act on SIGTERM
            self.process.stop()

    def freeze(self) -> None:
        """Unresponsive: connections are still accepted (by the kernel), but nothing is answered."""
        self.process.signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.signal(signal.SIGCONT)

    def client(self, timeout: float = 2.0) -> redis.Redis:
        return redis.Redis(port=self.port, password=self.password, socket_timeout=timeout,
                           socket_connect_timeout=timeout)  # fmt: skip

    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}"


class Stack:
    """PostgreSQL, Redis, gunicorn (2 processes), a Celery worker (prefork, 2 processes) and beat, started as
    `make run` starts them but on private ports, with the demo data loaded and indexed."""

    def __init__(self, workdir: Path, *, pg_port: int, redis_port: int, web_port: int, env: dict[str, str]):
        self.workdir = workdir
        self.web_port = web_port
        self.pg = Postgres(pg_port, secrets.token_hex(12))
        self.redis = Redis(redis_port, secrets.token_hex(12), workdir / "redis.log")
        # Only what the stack needs: never the developer's .env nor the variables of `make test` or `make run`.
        base = {key: value for key, value in os.environ.items() if key in ("PATH", "LANG", "LC_ALL", "HOME", "TZ")}
        self.env = {
            **base,
            "PATH": f"{BIN}{os.pathsep}{base.get('PATH', '/usr/bin:/bin')}",
            "DJANGO_READ_DOT_ENV": "false",
            "DJANGO_SETTINGS_MODULE": "project.settings.local",
            "DJANGO_DEBUG": "false",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DATABASE_URL": self.pg.url(),
            "REDIS_URL": self.redis.url(),
            "PYTHONUNBUFFERED": "1",
            "LOOKUP_ANONYMOUS_RATE_PER_MINUTE": "none",  # the judged traffic looks up as fast as it can, keyless
            **env,
        }
        # The Procfile's processes (ops/proc), as make run, Docker and ECS start them; settings from the environment.
        proc = str(ROOT / "ops" / "proc")
        self.web = Process(
            "web",
            [proc, "web", "--timeout", "30", "--graceful-timeout", "5"],
            {**self.env, "WEB_BIND": f"127.0.0.1:{web_port}", "WEB_CONCURRENCY": "2"},
            workdir / "web.log",
        )
        self.worker = Process(
            "worker", [proc, "worker"], {**self.env, "CELERY_WORKER_CONCURRENCY": "2"}, workdir / "worker.log"
        )
        self.beat = Process(
            "beat",
            [proc, "beat"],
            {**self.env, "CELERY_BEAT_SCHEDULE": str(workdir / "celerybeat-schedule")},
            workdir / "beat.log",
        )
        self.token = ""

    @property
    def processes(self) -> list[Process]:
        return [self.web, self.worker, self.beat]

    def manage(self, *args: str) -> str:
        done = subprocess.run([str(BIN / "python"), "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True,
                              text=True, timeout=300)  # fmt: skip
        if done.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def start(self) -> None:
        for port in (self.pg.port, self.redis.port, self.web_port):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    raise RuntimeError(f"port {port} is in use: the fault suite needs private ports (FAULTS_*_PORT)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.pg.create()
        self.redis.start()
        self.manage("migrate", "--noinput")
        demo = self.manage("load_demo")
        self.token = demo.split("Demo API token: ", 1)[1].split()[0]
        self.manage("reindex", "--no-progress")
        for process in self.processes:
            process.start()
        wait_until(lambda: self.health()[1].get("status") == "ok", 60, "the stack healthy after start")
        wait_until(lambda: "ready." in self.worker.output(), 60, "the worker consuming")

    def stop(self) -> None:
        for process in self.processes:
            with contextlib.suppress(Exception):  # keep tearing down the rest
                process.stop()
        self.redis.stop()
        self.pg.destroy()

    # --- HTTP ---

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.web_port}{path}"

    def get(self, path: str, *, params: dict | None = None, timeout: float = 10, **kwargs) -> requests.Response:
        return requests.get(self.url(path), params=params, timeout=timeout, **kwargs)

    def write(self, method: str, path: str, body: dict | None = None, timeout: float = 10) -> requests.Response:
        return requests.request(method, self.url(path), json=body, timeout=timeout,
                                headers={"Authorization": f"Token {self.token}"})  # fmt: skip

    def pids(self) -> dict[str, int]:
        return {process.name: process.pid for process in self.processes}

    def worker_process_on_port(self, port: int) -> int | None:
        """The worker's pool process that owns the TCP connection from local `port` (e.g. a PostgreSQL client
        port), if any."""
        inodes = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
        for pid in self.worker.children():
            try:
                links = {os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()}
            except OSError:
                continue
            if any(f"socket:[{inode}]" in links for inode in inodes):
                return pid
        return None

    def health(self) -> tuple[int, dict]:
        response = self.get("/health/", timeout=5)
        return response.status_code, response.json()
