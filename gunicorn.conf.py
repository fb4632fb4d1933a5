"""gunicorn reads this file from the working directory by default: every way this project starts gunicorn (the
Procfile's `web`: make run, Docker, ECS, the benchmark) shares these settings, read from the environment:

- WEB_CONCURRENCY: worker processes (gunicorn's own variable; 3 by default here);
- GUNICORN_MAX_REQUESTS (+ _JITTER): recycle a worker after that many requests (0: never). The default, a million
  (+ up to 10 %), bounds what a slow leak could grow to while costing nothing measurable: a recycled worker starts
  with empty caches (results, outlines) and warms them again from Redis within its first few thousand lookups, which
  at 1,000 lookups a second per worker happens once every quarter of an hour or so. The benchmark runs with these
  same settings; 10,000 (the image's earlier value) threw the caches away every ~10 s under load;
- GUNICORN_ACCESS_LOG: where access lines go ("-": standard output, the default; "": nowhere);
- FORWARDED_ALLOW_IPS: proxies trusted for X-Forwarded-* (gunicorn's own variable; the image trusts the load
  balancer in front of it).

Prometheus metrics are shared between the workers of one master.
"""

import os
import shutil
import tempfile

workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "1000000"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", str(max_requests // 10)))
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None  # "": none (the benchmark)
errorlog = "-"


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
