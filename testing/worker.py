"""A real Celery worker process for end-to-end tests: on the test broker and the test database, consuming the given
queues, with tasks published to it instead of run in-process. It dies with the test run (even one killed by a
timeout), and its log is the test's evidence (tasks received, retried, succeeded)."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PR_SET_PDEATHSIG = 1
READY_WITHIN_SECONDS = 60


def _die_with_parent() -> None:
    """Runs in the child before exec: when the test process dies, the worker is sent SIGTERM."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@contextmanager
def celery_worker(
    log: Path, *, queues: str, threads: int | None = None, env: dict[str, str] | None = None
) -> Iterator[Path]:
    """Start a worker consuming `queues` (comma-separated), solo or with `threads` threads, with `env` added to this
    process's environment; yield its log file once it is ready; stop it afterwards. The broker starts empty."""
    import redis
    from django.conf import settings
    from django.db import connection

    from worker.celery import app as celery_app

    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings.test",
        "TEST_DATABASE_NAME": connection.settings_dict["NAME"],
        "CELERY_TASK_ALWAYS_EAGER": "false",
        **(env or {}),
    }
    pool = ["--pool", "threads", "--concurrency", str(threads)] if threads else ["--pool", "solo"]
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "worker", "worker", *pool, "-Q", queues,
         "--without-heartbeat", "--without-gossip", "--without-mingle", "--loglevel", "INFO"],
        cwd=settings.BASE_DIR, env=environment, stdout=log.open("w"), stderr=subprocess.STDOUT,
        preexec_fn=_die_with_parent,
    )  # fmt: skip
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        deadline = time.monotonic() + READY_WITHIN_SECONDS
        while "ready." not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield log
    finally:
        celery_app.conf.task_always_eager = eager
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
