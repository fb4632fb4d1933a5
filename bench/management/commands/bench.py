"""manage.py bench: the benchmark behind `make bench` (run with project.settings.bench).

For each scale (number of service areas): load that many areas, build the index, then measure
1. in-process lookup latency over the query points, for the indexed lookup and the plain GeoDjango path, and
   check that both give identical results for every point;
2. over HTTP, one gunicorn (same workers for every endpoint) and wrk, one endpoint after the other in the same
   run: the lookup, the strongest baselines without an index (a raw prepared PostGIS query on the lean path; the
   plain GeoDjango + DRF endpoint on the full stack) and the ceilings (a minimal Django view on the lean path, a
   trivial DRF view on the full stack). Before the load, every query point is fetched from the lookup and the
   raw baseline and the run fails unless the bodies are byte-identical.
Results go to docs/bench/ (JSON, a Markdown table and a plot) and, with --update-readme, into README.md.

Data: generated (realistic areas around real cities, see bench/data.py), or your own with
`--areas FILE` (newline-delimited GeoJSON Features as `manage.py import_areas` reads them, properties `provider`
(an id), `name`, `price`; missing providers are created with those ids; the scale defaults to the whole file and
`--scales` takes its first N lines) and `--points FILE` (one `{"lat": .., "lng": ..}` per line). Both files are
checked before anything else runs.
"""

from __future__ import annotations

import io
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from rest_framework.renderers import JSONRenderer

from bench import baseline, data, http, inputs, report
from bench.views import plain_lookup
from hexindex import celltable, redis_index
from hexindex.api import build_index, lookup, lookup_exact, lookup_many
from hexindex.maintenance import rebuild_redis
from providers.models import Provider

inputs.DEFAULT_SCALES = "1000,10000,50000,200000"
README_START = "<!-- bench:start -->"
README_END = "<!-- bench:end -->"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument(
            "--scales",
            default=None,
            help=f"Comma-separated area counts (default {inputs.DEFAULT_SCALES}; with --areas, the file's feature "
            "count; "
            "a scale of N takes the file's first N features).",
        )
        parser.add_argument(
            "--areas",
            type=Path,
            default=None,
            metavar="FILE",
            help="Your areas instead of generated ones: one GeoJSON Feature per line, as import_areas reads them, "
            "with properties provider (an id), name and price. Providers that do not exist are created with these "
            "ids (generated names, emails, currencies). Every feature must import.",
        )
        parser.add_argument(
            "--points",
            type=inputs.points_option,
            default=10_000,
            metavar="N|FILE",
            help='Query points: how many to generate (default 10000), or a file with one {"lat": .., "lng": ..} '
            "object per line to use instead.",
        )
        parser.add_argument("--providers", type=int, default=1000, help="Generated providers (not with --areas).")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--duration", type=int, default=15, help="Seconds of wrk load per endpoint.")
        parser.add_argument("--connections", type=int, default=16, help="Concurrent HTTP connections.")
        parser.add_argument("--web-workers", type=int, default=4, help="gunicorn workers (same for each endpoint).")
        parser.add_argument(
            "--worker-class",
            choices=["sync", "gthread"],
            default="sync",
            help="gunicorn worker class for every endpoint: sync (default; a connection per request) or gthread "
            "with one thread per worker and keep-alive.",
        )
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
        # The user's files first: a mistake in them must not cost a data load and an index build.
        file_features = inputs.check_areas_file(options["areas"]) if options["areas"] else None
        if isinstance(options["points"], Path):
            points = inputs.read_points_file(options["points"])
            points_name = f"points-{options['points'].stem}.txt"
        else:
            points = data.query_points(options["points"], options["seed"])
            points_name = f"points-{options['points']}-seed{options['seed']}.txt"
        scales = inputs.scales(options["scales"], file_features)

        data_dir = Path(options["data_dir"])
        data_dir.mkdir(parents=True, exist_ok=True)
        _ensure_database()
        call_command("migrate", verbosity=0)
        areas_file = self._areas_file(data_dir, scales[-1], options)
        points_file = data_dir / points_name
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
            result |= self._recovery()
            results.append(result)
            self.stdout.write(json.dumps(result, indent=2))
        if options["check"]:
            return
        self._write_outputs(results, options)

    def _areas_file(self, data_dir: Path, count: int, options) -> Path:
        """The areas, one Feature per line; the first N lines are the data set of N areas. The user's file
        (--areas, checked already), or generated ones (cached in data_dir)."""
        if options["areas"]:
            return options["areas"]
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
        # The bench's own Redis databases, whatever the index keeps in them. Freed in the background: a big index
        # takes longer than a socket timeout.
        index_redis = redis.Redis.from_url(settings.HEXINDEX_REDIS_URL)
        index_redis.flushdb(asynchronous=True)
        redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb(asynchronous=True)
        _wait_for_lazy_free(index_redis)  # else the previous scale's index is still being freed while Redis is measured
        owner, _ = get_user_model().objects.get_or_create(username="bench")
        provider_ids, line_numbers = set(), []
        with tempfile.NamedTemporaryFile("w", suffix=".ndjson", delete=False) as subset, areas_file.open() as source:
            for number, line in inputs.first_features(source, scale):
                subset.write(line)
                line_numbers.append(number)
                if options["areas"]:
                    provider_ids.add(int(orjson.loads(line)["properties"]["provider"]))
        if options["areas"]:
            inputs.create_providers(owner, provider_ids, options["seed"])
        else:
            Provider.objects.bulk_create(
                Provider(owner=owner, approved=True, **fields)
                for fields in data.providers(options["providers"], options["seed"])
            )
        started = time.perf_counter()
        rejected = io.StringIO()
        call_command("import_areas", subset.name, "--no-index", "--no-progress", stdout=io.StringIO(), stderr=rejected)
        os.unlink(subset.name)
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE areas_servicearea")
            cursor.execute("SELECT count(*) FROM areas_servicearea")
            (loaded,) = cursor.fetchone()
        if loaded != scale:
            # import_areas names lines of the subset file: name them in the areas file instead.
            errors = re.sub(
                rf"^{re.escape(subset.name)}:(\d+):",
                lambda match: f"{areas_file}:{line_numbers[int(match.group(1)) - 1]}:",
                rejected.getvalue(),
                flags=re.M,
            )
            raise CommandError(f"{scale - loaded} of the first {scale:,} areas were rejected:\n{errors}")
        seconds = time.perf_counter() - started
        self.stdout.write(f"imported {loaded:,} areas in {seconds:.0f} s")
        return {"imported": loaded, "import_seconds": round(seconds, 1)}

    def _build(self, options) -> dict:
        with connection.cursor() as cursor:
            cursor.execute("SELECT id FROM areas_servicearea ORDER BY id")
            area_ids = [row[0] for row in cursor.fetchall()]
        redis_before = redis_index.memory_bytes()
        started = time.perf_counter()
        report = build_index(area_ids, workers=options["build_workers"])
        seconds = time.perf_counter() - started
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE hexindex_areacell")
            cursor.execute("VACUUM ANALYZE hexindex_areaindex")
            cursor.execute("VACUUM ANALYZE areas_servicearea")
            cursor.execute("SELECT pg_total_relation_size('areas_servicearea')")
            (area_bytes,) = cursor.fetchone()
        rows, cell_bytes = celltable.size()
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
            "redis_mb": round((redis_index.memory_bytes() - redis_before) / 2**20, 1),
            "redis_keys": redis_index.client().dbsize(),
        }
        self.stdout.write(
            f"index built in {seconds:.0f} s: {rows:,} cell rows, {result['cell_table_mb']} MiB in PostgreSQL, "
            f"{result['redis_mb']} MiB in Redis"
        )
        return result

    def _recovery(self) -> dict:
        """Redis restarts empty: how long until the index is live again (lookups are exact meanwhile)."""
        index_redis = redis_index.client()
        index_redis.flushdb(asynchronous=True)
        _wait_for_lazy_free(index_redis)
        started = time.perf_counter()
        report = rebuild_redis()
        seconds = time.perf_counter() - started
        if report.generation is None:
            raise CommandError("could not rebuild Redis: another rebuild holds the lock")
        self.stdout.write(f"Redis rebuilt from PostgreSQL in {seconds:.1f} s ({report.records:,} records)")
        return {"redis_rebuild_seconds": round(seconds, 1)}

    def _in_process(self, points, options) -> dict:
        """Every point from the lookup, the raw query and the plain GeoDjango path (all must agree), then all
        three timed, interleaved so they see the same machine. The first pass also warms this process's caches,
        as a web process's would be warm."""
        renderer = JSONRenderer()
        mismatches, first = [], []
        for lat, lng in points:
            indexed, exact = lookup(lat=lat, lng=lng), lookup_exact(lat=lat, lng=lng)
            first.append(indexed)
            plain = orjson.loads(renderer.render(plain_lookup(lat=lat, lng=lng)))
            if indexed.body != exact.body or orjson.loads(indexed.body) != plain:
                mismatches.append({"lat": lat, "lng": lng, "indexed": indexed.count, "exact": exact.count})
        if mismatches:
            raise CommandError(f"the lookup and PostGIS disagree on {len(mismatches)} points: {mismatches[:5]}")
        # The baseline's plan where it works hardest (the point with the most results): no sequential scans.
        busiest = max(range(len(points)), key=lambda i: first[i].count)
        plan = baseline.checked_plan(lat=points[busiest][0], lng=points[busiest][1])
        self.stdout.write(f"baseline plan at {points[busiest]} ({first[busiest].count} results):\n{plan}")

        index_redis = redis_index.client()
        timed, index_times, raw_times, plain_times, batch_times = [], [], [], [], []
        redis_calls = redis_usec = 0
        # Blocks of points, each path in turn: all three see the same machine, and each runs with its own data in
        # the CPU's caches, as a web process serving only that path would.
        for start in range(0, len(points), http.BATCH_SIZE):
            block = points[start : start + http.BATCH_SIZE]
            calls_before = _redis_reads(index_redis)
            for lat, lng in block:
                started = time.perf_counter()
                timed.append(lookup(lat=lat, lng=lng))
                index_times.append(time.perf_counter() - started)
            calls_after = _redis_reads(index_redis)
            redis_calls += calls_after[0] - calls_before[0]
            redis_usec += calls_after[1] - calls_before[1]
            for lat, lng in block:
                started = time.perf_counter()
                lookup_exact(lat=lat, lng=lng)
                raw_times.append(time.perf_counter() - started)
            for lat, lng in block:
                started = time.perf_counter()
                renderer.render(plain_lookup(lat=lat, lng=lng))
                plain_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            batched = lookup_many(block)
            batch_times.append(time.perf_counter() - started)
            if [r.body for r in batched] != [r.body for r in timed[start : start + len(block)]]:
                raise CommandError(f"a batch and single lookups disagree in points {start} to {start + len(block)}")
        redis_calls = max(redis_calls, 1)

        def mean(values) -> float:
            return round(statistics.mean(values), 3)

        def ms(values, q) -> float:
            return round(percentile(values, q) * 1000, 3)

        result = {
            "points": len(points),
            "agree": True,
            "matches_mean": mean(r.count for r in timed),
            "matches_max": max(r.count for r in timed),
            "body_bytes_mean": round(statistics.mean(len(r.body) for r in timed)),
            "candidates_mean": mean(r.candidates for r in timed),
            "boundary_candidates_mean": mean(r.boundary_candidates for r in timed),
            "exact_checks_mean": mean(r.exact_checks for r in timed),
            "checks_in_process_mean": mean(r.checks_in_process for r in timed),
            "postgres_queries_mean": mean(r.postgres_queries for r in timed),
            "no_postgres_share": mean(r.postgres_queries == 0 for r in timed),
            "no_postgres_share_cold": mean(r.postgres_queries == 0 for r in first),
            "index_source_share": mean(r.source == "index" for r in timed),
            "redis_ms_mean": round(statistics.mean(r.redis_seconds for r in timed) * 1000, 3),
            "redis_server_us_per_call": round(redis_usec / redis_calls, 1),
            "redis_calls_per_lookup": round(redis_calls / len(points), 3),
            "postgres_ms_mean": round(statistics.mean(r.postgres_seconds for r in timed) * 1000, 3),
            "inproc_index_p50_ms": ms(index_times, 0.5),
            "inproc_index_p99_ms": ms(index_times, 0.99),
            "inproc_raw_p50_ms": ms(raw_times, 0.5),
            "inproc_raw_p99_ms": ms(raw_times, 0.99),
            "inproc_plain_p50_ms": ms(plain_times, 0.5),
            "inproc_plain_p99_ms": ms(plain_times, 0.99),
            # Batches of 100 (lookup_many) against the same points one by one, measured side by side.
            "inproc_single_points_per_s": round(len(points) / sum(index_times)),
            "inproc_batch_points_per_s": round(len(points) / sum(batch_times)),
        }
        result["inproc_batch_vs_single"] = round(
            result["inproc_batch_points_per_s"] / result["inproc_single_points_per_s"], 2
        )
        self.stdout.write(
            f"in-process, {len(points):,} points, all identical: index p50 {result['inproc_index_p50_ms']} ms "
            f"p99 {result['inproc_index_p99_ms']} ms; raw SQL p50 {result['inproc_raw_p50_ms']} ms "
            f"p99 {result['inproc_raw_p99_ms']} ms; plain p50 {result['inproc_plain_p50_ms']} ms "
            f"p99 {result['inproc_plain_p99_ms']} ms; per lookup {result['candidates_mean']} candidates, "
            f"{result['boundary_candidates_mean']} boundary, {result['exact_checks_mean']} exact checks, "
            f"{result['no_postgres_share']:.0%} without PostgreSQL; batches of {http.BATCH_SIZE}: "
            f"{result['inproc_batch_points_per_s']:,} points/s vs {result['inproc_single_points_per_s']:,} one by one"
        )
        return result

    # -- HTTP ------------------------------------------------------------------------------------------------

    def _http(self, points_file: Path, options) -> dict:
        """One gunicorn for every endpoint; the lookup and the raw baseline must agree on every point; then wrk
        on each endpoint in turn."""
        port = http.free_port()
        # The Procfile's web process (ops/proc), as production starts it; only its environment differs.
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "project.settings.bench",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "WEB_BIND": f"127.0.0.1:{port}",
            "WEB_CONCURRENCY": str(options["web_workers"]),
            "GUNICORN_ACCESS_LOG": "",
        }
        server = subprocess.Popen(
            [str(settings.BASE_DIR / "ops" / "proc"), "web", *http.WORKER_CLASS_ARGS[options["worker_class"]],
             "--log-level", "warning"],
            cwd=settings.BASE_DIR, env=env,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        queries = points_file.read_text().split()
        try:
            http.wait_for(f"{base}/health/live/")
            result = http.agreement(base, queries, options["web_workers"])
            self.stdout.write(
                f"HTTP: the lookup and the raw query return identical bodies for all {len(queries):,} points "
                f"(mean {result['http_body_bytes_mean']:,.0f} bytes)"
            )
            for name, path in http.HTTP_ENDPOINTS.items():
                url = f"{base}{path}"
                # As long a warm-up as a measurement: every web process warms its own caches (results, shapes), as
                # it would under real traffic; all endpoints alike.
                http.wrk(url, points_file, options["connections"], options["duration"])
                measured = http.wrk(url, points_file, options["connections"], options["duration"])
                if measured["errors"]:
                    raise CommandError(f"HTTP {name}: {measured['errors']} responses were not 2xx ({url})")
                result |= {f"http_{name}_{key}": value for key, value in measured.items()}
                self.stdout.write(f"HTTP {name}: {measured}")
            result |= http.batch_agreement(base, queries)
            url = f"{base}{http.BATCH_PATH}"
            http.wrk(url, points_file, options["connections"], options["duration"], batch=http.BATCH_SIZE)
            measured = http.wrk(url, points_file, options["connections"], options["duration"], batch=http.BATCH_SIZE)
            if measured["errors"]:
                raise CommandError(f"HTTP batch: {measured['errors']} responses were not 2xx ({url})")
            result |= {f"http_batch_{key}": value for key, value in measured.items()}
            result["http_batch_points_per_s"] = round(measured["rps"] * http.BATCH_SIZE)
            self.stdout.write(f"HTTP batch of {http.BATCH_SIZE}: {measured}")
        finally:
            server.terminate()
            server.wait(timeout=30)
        for other in ("raw", "plain", "minimal", "trivial"):
            result[f"http_index_vs_{other}"] = round(result["http_index_rps"] / result[f"http_{other}_rps"], 2)
        result["http_batch_vs_single"] = round(result["http_batch_points_per_s"] / result["http_index_rps"], 2)
        result["http_connections"] = options["connections"]
        result["http_web_workers"] = options["web_workers"]
        result["http_worker_class"] = options["worker_class"]
        return result

    # -- outputs ---------------------------------------------------------------------------------------------

    def _write_outputs(self, results: list[dict], options):
        out = Path(options["out"])
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        table = report.markdown_table(results)
        (out / "results.md").write_text(table + "\n")
        report.plot(results, out / "bench.png")
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


def _redis_reads(client: redis.Redis) -> tuple[int, int]:
    """(round trips, microseconds inside Redis) of the lookup's reads so far: each is a MULTI/EXEC transaction,
    whose EXEC runs the queued commands."""
    stats = client.info("commandstats").get("cmdstat_exec", {})
    return int(stats.get("calls", 0)), int(stats.get("usec", 0))


def _wait_for_lazy_free(client: redis.Redis, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while int(client.info("memory").get("lazyfree_pending_objects", 0)) and time.monotonic() < deadline:
        time.sleep(0.5)
