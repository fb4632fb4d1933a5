"""gunicorn reads this file from the working directory by default: every way this project starts gunicorn (make
run, Docker, ECS, the benchmark) shares Prometheus metrics between the workers of one master."""

import os
import shutil
import tempfile


def on_starting(server):
    # Before any worker imports prometheus_client: they inherit the directory. A fresh one per master, so counters
    # start at zero with the server and never mix with another server's.
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="servicearea-metrics-")
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
