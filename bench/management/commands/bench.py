"""manage.py bench: the benchmark behind `make bench` (run with project.settings.bench).

For each scale (number of service areas): load that many generated areas, build the index, then measure
1. in-process lookup latency over the query points, for the indexed lookup and the plain GeoDjango path, and
   check that both give identical results for every point;
2. over HTTP with gunicorn and wrk (same worker count for each): the lookup endpoint, the plain GeoDjango
   endpoint and a trivial endpoint on the same stack (the ceiling), one after the other in the same run.
Results go to docs/bench/ (JSON, a Markdown table and a plot) and, with --update-readme, into README.md.
"""

from __future__ import annotations

import io
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import orjson
import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from rest_framework.renderers import JSONRenderer

from bench import data
from bench.views import plain_lookup
from hexindex import store
from hexindex.bulk import build_index
from hexindex.selectors import lookup
from providers.models import Provider

README_START = "<!-- bench:start -->"
README_END = "<!-- bench:end -->"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--scales", default="1000,10000,50000,200000", help="Comma-separated area counts.")
        parser.add_argument("--points", type=int, default=10_000, help="Query points per scale.")
        parser.add_argument("--providers", type=int, default=1000)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--duration", type=int, default=15, help="Seconds of wrk load per endpoint.")
        parser.add_argument("--connections", type=int, default=16, help="Concurrent HTTP connections.")
        parser.add_argument("--web-workers", type=int, default=4, help="gunicorn workers (same for each endpoint).")
        parser.add_argument("--build-workers", type=int, default=None, help="Processes computing covers.")
        parser.add_argument("--no-http", action="store_true", help="Skip the HTTP measurements.")
        parser.add_argument("--data-dir", default=str(settings.BASE_DIR / "bench-data"))
        parser.add_argument("--out", default=str(settings.BASE_DIR / "docs" / "bench"))
        parser.add_argument("--update-readme", action="store_true", help="Write the results table into README.md.")
        parser.add_argument(
            "--check", action="store_true", help="CI mode: fail unless both paths agree; no timing targets."
        )

    # -- orchestration ------------------------------------------------------------------------------------------

    def handle(self, *args, **options):
        scales = sorted(int(s) for s in options["scales"].split(","))
        data_dir = Path(options["data_dir"])
        data_dir.mkdir(parents=True, exist_ok=True)
        _ensure_database()
        call_command("migrate", verbosity=0)
        areas_file = self._areas_file(data_dir, scales[-1], options)
        points = data.query_points(options["points"], options["seed"])
        points_file = data_dir / f"points-{options['points']}-seed{options['seed']}.txt"
        points_file.write_text("".join(f"lat={lat}&lng={lng}\n" for lat, lng in points))

        results = []
        for scale in scales:
            self.stdout.write(self.style.MIGRATE_HEADING(f"== {scale:,} service areas"))
            result = {"areas": scale}
            result |= self._load(areas_file, scale, options)
            result |= self._build(options)
            result |= self._in_process(points, options)
            if not options["no_http"]:
                result |= self._http(points_file, options)
            results.append(result)
            self.stdout.write(json.dumps(result, indent=2))
        if options["check"]:
            return
        self._write_outputs(results, options)

    def _areas_file(self, data_dir: Path, count: int, options) -> Path:
        """The generated areas, one Feature per line; the first N lines are the data set of N areas."""
        path = data_dir / f"areas-{count}-providers{options['providers']}-seed{options['seed']}.ndjson"
        if not path.exists():
            started = time.perf_counter()
            self.stdout.write(f"generating {count:,} areas into {path} ...")
            provider_ids = list(range(1, options["providers"] + 1))
            partial = path.with_suffix(".partial")
            with partial.open("wb") as out:
                for feature in data.area_features(count, options["seed"], provider_ids):
                    out.write(orjson.dumps(feature) + b"\n")
            partial.rename(path)
            self.stdout.write(f"generated in {time.perf_counter() - started:.0f} s")
        return path

    def _load(self, areas_file: Path, scale: int, options) -> dict:
        with connection.cursor() as cursor:
            cursor.execute(
                "TRUNCATE providers_provider, areas_servicearea, hexindex_areacell, hexindex_areaindex "
                "RESTART IDENTITY CASCADE"
            )
        store.client().flushdb(asynchronous=True)  # a big index takes longer than the socket timeout
        redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb(asynchronous=True)
        _wait_for_lazy_free()  # else the previous scale's index is still being freed while Redis memory is measured
        owner, _ = get_user_model().objects.get_or_create(username="bench")
        Provider.objects.bulk_create(
            Provider(owner=owner, **fields) for fields in data.providers(options["providers"], options["seed"])
        )
        with tempfile.NamedTemporaryFile("w", suffix=".ndjson", delete=False) as subset, areas_file.open() as source:
            for _, line in zip(range(scale), source, strict=False):
                subset.write(line)
        started = time.perf_counter()
        call_command("import_areas", subset.name, "--no-index", "--no-progress", stdout=io.StringIO())
        os.unlink(subset.name)
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE areas_servicearea")
            cursor.execute("SELECT count(*) FROM areas_servicearea")
            (loaded,) = cursor.fetchone()
        seconds = time.perf_counter() - started
        self.stdout.write(f"imported {loaded:,} areas in {seconds:.0f} s")
        return {"imported": loaded, "import_seconds": round(seconds, 1)}

    def _build(self, options) -> dict:
        with connection.cursor() as cursor:
            cursor.execute("SELECT id FROM areas_servicearea ORDER BY id")
            area_ids = [row[0] for row in cursor.fetchall()]
        redis_before = store.memory_bytes()
        store.client().set(store.GEN_KEY, 1)
        started = time.perf_counter()
        report = build_index(area_ids, workers=options["build_workers"])
        seconds = time.perf_counter() - started
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE hexindex_areacell")
            cursor.execute("VACUUM ANALYZE areas_servicearea")
            cursor.execute(
                "SELECT count(*), pg_total_relation_size('hexindex_areacell'), "
                "pg_total_relation_size('areas_servicearea') FROM hexindex_areacell"
            )
            rows, cell_bytes, area_bytes = cursor.fetchone()
        if report.failed:
            raise CommandError(f"{len(report.failed)} areas failed to index: {list(report.failed.items())[:3]}")
        cells_total = report.interior_cells + report.boundary_cells
        result = {
            "build_seconds": round(seconds, 1),
            "build_ms_per_area_median": round(statistics.median(report.cover_seconds) * 1000, 2),
            "cells_per_area": round(cells_total / len(report.indexed), 1),
            "boundary_cells_per_area": round(report.boundary_cells / len(report.indexed), 1),
            "cell_rows": rows,
            "cell_table_mb": round(cell_bytes / 2**20, 1),
            "area_table_mb": round(area_bytes / 2**20, 1),
            "redis_mb": round((store.memory_bytes() - redis_before) / 2**20, 1),
            "redis_keys": store.client().dbsize(),
        }
        self.stdout.write(
            f"index built in {seconds:.0f} s: {rows:,} cell rows, {result['cell_table_mb']} MiB in PostgreSQL, "
            f"{result['redis_mb']} MiB in Redis"
        )
        return result

    def _in_process(self, points, options) -> dict:
        renderer = JSONRenderer()

        def indexed(lat, lng):
            return orjson.loads(lookup(lat=lat, lng=lng))

        def plain(lat, lng):
            return orjson.loads(renderer.render(plain_lookup(lat=lat, lng=lng)))

        mismatches = []
        matches = []
        for lat, lng in points:  # warm-up, and the correctness check on every point
            a, b = indexed(lat, lng), plain(lat, lng)
            matches.append(a["count"])
            if a != b:
                mismatches.append({"lat": lat, "lng": lng, "indexed": a["count"], "plain": b["count"]})
        if mismatches:
            raise CommandError(f"indexed and plain lookups disagree on {len(mismatches)} points: {mismatches[:5]}")
        index_times, plain_times = [], []
        for lat, lng in points:  # interleaved, so both paths see the same machine
            started = time.perf_counter()
            lookup(lat=lat, lng=lng)
            index_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            renderer.render(plain_lookup(lat=lat, lng=lng))
            plain_times.append(time.perf_counter() - started)
        result = {
            "points": len(points),
            "agree": True,
            "matches_mean": round(statistics.mean(matches), 1),
            "matches_max": max(matches),
            "inproc_index_p50_ms": round(percentile(index_times, 0.5) * 1000, 3),
            "inproc_index_p99_ms": round(percentile(index_times, 0.99) * 1000, 3),
            "inproc_plain_p50_ms": round(percentile(plain_times, 0.5) * 1000, 3),
            "inproc_plain_p99_ms": round(percentile(plain_times, 0.99) * 1000, 3),
        }
        self.stdout.write(
            f"in-process, {len(points):,} points, all identical: index p50 {result['inproc_index_p50_ms']} ms "
            f"p99 {result['inproc_index_p99_ms']} ms; plain p50 {result['inproc_plain_p50_ms']} ms "
            f"p99 {result['inproc_plain_p99_ms']} ms"
        )
        return result

    # -- HTTP ------------------------------------------------------------------------------------------------

    def _http(self, points_file: Path, options) -> dict:
        port = _free_port()
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "project.settings.bench"}
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "project.wsgi:application", "--bind", f"127.0.0.1:{port}",
             "--workers", str(options["web_workers"]), "--log-level", "warning"],
            cwd=settings.BASE_DIR, env=env,
        )  # fmt: skip
        try:
            _wait_for(f"http://127.0.0.1:{port}/health/live/")
            result = {}
            for name, path in (
                ("index", "/api/v1/lookup/"),
                ("plain", "/bench/plain-lookup/"),
                ("trivial", "/bench/trivial/"),
            ):
                url = f"http://127.0.0.1:{port}{path}"
                _wrk(url, points_file, options["connections"], max(2, options["duration"] // 5))  # warm-up
                measured = _wrk(url, points_file, options["connections"], options["duration"])
                result |= {f"http_{name}_{key}": value for key, value in measured.items()}
                self.stdout.write(f"HTTP {name}: {measured}")
        finally:
            server.terminate()
            server.wait(timeout=30)
        result["http_index_vs_plain"] = round(result["http_index_rps"] / result["http_plain_rps"], 2)
        result["http_index_vs_trivial"] = round(result["http_index_rps"] / result["http_trivial_rps"], 2)
        result["http_connections"] = options["connections"]
        result["http_web_workers"] = options["web_workers"]
        return result

    # -- outputs ---------------------------------------------------------------------------------------------

    def _write_outputs(self, results: list[dict], options):
        out = Path(options["out"])
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        table = markdown_table(results)
        (out / "results.md").write_text(table + "\n")
        plot(results, out / "bench.png")
        self.stdout.write(table)
        if options["update_readme"]:
            readme = settings.BASE_DIR / "README.md"
            text = readme.read_text()
            pattern = re.compile(re.escape(README_START) + ".*?" + re.escape(README_END), re.S)
            if not pattern.search(text):
                raise CommandError(f"README.md has no {README_START} ... {README_END} section")
            readme.write_text(pattern.sub(lambda _: f"{README_START}\n{table}\n{README_END}", text))


def _ensure_database() -> None:
    """Create the benchmark's own database (from template1, which has PostGIS) when it does not exist yet."""
    import psycopg2
    from psycopg2 import sql

    params = settings.DATABASES["default"]
    admin = psycopg2.connect(
        dbname="postgres", user=params["USER"], password=params["PASSWORD"], host=params["HOST"], port=params["PORT"]
    )
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [params["NAME"]])
        if cursor.fetchone() is None:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(params["NAME"])))
    admin.close()


def _wait_for_lazy_free(timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while int(store.client().info("memory").get("lazyfree_pending_objects", 0)) and time.monotonic() < deadline:
        time.sleep(0.5)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise CommandError(f"{url} did not come up") from None
            time.sleep(0.2)


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _wrk(url: str, points_file: Path, connections: int, duration: int) -> dict:
    script = Path(__file__).resolve().parents[2] / "wrk.lua"
    completed = subprocess.run(
        ["wrk", "-t", "2", "-c", str(connections), "-d", f"{duration}s", "--latency", "-s", str(script), url, "--",
         str(points_file)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    output = completed.stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", output, re.M))

    def ms(value: str) -> float:
        number, unit = re.match(r"([\d.]+)(\w+)", value).groups()
        return round(float(number) * _UNITS[unit], 2)

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    return {
        "rps": round(float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)), 1),
        "p50_ms": ms(latency["50"]),
        "p99_ms": ms(latency["99"]),
        "errors": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
    }


def markdown_table(results: list[dict]) -> str:
    rows = [
        "| Areas | Cells/area | Build (2 cores) | Cell table | Redis | In-process p50 / p99: index vs plain (ms) "
        "| HTTP req/s: index / plain / trivial | HTTP p50 / p99 index (ms) | index / plain | index / trivial |",
        "| ---: | ---: | ---: | ---: | ---: | --- | --- | --- | ---: | ---: |",
    ]
    for r in results:
        http = (
            (
                f"{r['http_index_rps']:,.0f} / {r['http_plain_rps']:,.0f} / {r['http_trivial_rps']:,.0f}",
                f"{r['http_index_p50_ms']} / {r['http_index_p99_ms']}",
                f"{r['http_index_vs_plain']}x",
                f"{r['http_index_vs_trivial']:.0%}",
            )
            if "http_index_rps" in r
            else ("-", "-", "-", "-")
        )
        rows.append(
            f"| {r['areas']:,} | {r['cells_per_area']} | {r['build_seconds']:.0f} s "
            f"({r['build_ms_per_area_median']} ms/area) | {r['cell_table_mb']:,.0f} MiB | {r['redis_mb']:,.0f} MiB "
            f"| {r['inproc_index_p50_ms']} / {r['inproc_index_p99_ms']} vs {r['inproc_plain_p50_ms']} / "
            f"{r['inproc_plain_p99_ms']} | {http[0]} | {http[1]} | {http[2]} | {http[3]} |"
        )
    return "\n".join(rows)


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    areas = [r["areas"] for r in results]
    figure, (latency, throughput) = plt.subplots(1, 2, figsize=(11, 4.2))
    latency.plot(areas, [r["inproc_index_p50_ms"] for r in results], "o-", label="index p50")
    latency.plot(areas, [r["inproc_index_p99_ms"] for r in results], "o--", label="index p99")
    latency.plot(areas, [r["inproc_plain_p50_ms"] for r in results], "s-", label="plain GeoDjango p50")
    latency.plot(areas, [r["inproc_plain_p99_ms"] for r in results], "s--", label="plain GeoDjango p99")
    latency.set(xscale="log", yscale="log", xlabel="service areas", ylabel="ms", title="In-process lookup latency")
    latency.legend()
    if all("http_index_rps" in r for r in results):
        for key, label, marker in (("index", "lookup (index)", "o-"), ("plain", "plain GeoDjango", "s-"),
                                   ("trivial", "trivial endpoint", "^:")):  # fmt: skip
            throughput.plot(areas, [r[f"http_{key}_rps"] for r in results], marker, label=label)
        throughput.set(xscale="log", xlabel="service areas", ylabel="requests/s",
                       title=f"HTTP throughput, {results[0]['http_connections']} connections")  # fmt: skip
        throughput.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
