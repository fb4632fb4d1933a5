"""manage.py reindex: build the hexagon index of areas in bulk, or rebuild its Redis side from PostgreSQL."""

import time

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from hexindex import celltable, redis_index
from hexindex.bulk import area_ids_to_index, build_index, summarise
from hexindex.maintenance import rebuild_redis
from hexindex.tasks import sweep_index


class Command(BaseCommand):
    help = (
        "Build the hexagon index of service areas not indexed yet (all, or the given ids). Resumable: an "
        "interrupted run continues where it stopped. --force rebuilds indexed areas too; --redis-only rebuilds "
        "the Redis side from the cell table in PostgreSQL."
    )

    def add_arguments(self, parser):
        parser.add_argument("ids", nargs="*", type=int, help="Only these service area ids.")
        parser.add_argument("--force", action="store_true", help="Rebuild areas that are already indexed.")
        parser.add_argument("--redis-only", action="store_true", help="Only rebuild Redis from PostgreSQL.")
        parser.add_argument("--enqueue", action="store_true", help="Leave it to the worker: queue a sweep and exit.")
        parser.add_argument("--workers", type=int, default=None, help="Processes computing covers (default: CPUs).")
        parser.add_argument("--batch-size", type=int, default=250, help="Areas written per transaction.")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar (e.g. in logs).")

    def handle(self, *args, **options):
        if options["enqueue"]:
            sweep_index.delay()
            self.stdout.write("Queued an index sweep: the worker indexes pending areas and rebuilds Redis if needed.")
            return
        if options["redis_only"]:
            self._rebuild_redis()
            return
        self._build(options)

    def _build(self, options):
        started = time.perf_counter()
        area_ids = area_ids_to_index(options["ids"] or None, force=options["force"])
        if not area_ids:
            self.stdout.write("Nothing to index: every area is live in the index.")
            self._ensure_redis()
            return

        with tqdm(total=len(area_ids), unit="area", disable=options["no_progress"]) as bar:
            report = build_index(
                area_ids,
                force=options["force"],
                workers=options["workers"],
                batch_size=options["batch_size"],
                progress=bar.update,
            )
        self._ensure_redis()
        elapsed = time.perf_counter() - started

        self.stdout.write(summarise(report, elapsed))
        self.stdout.write(self._storage_summary())
        for area_id, error in list(report.failed.items())[:20]:
            self.stderr.write(f"area {area_id}: {error}")
        if report.failed:
            raise CommandError(f"{len(report.failed)} areas could not be indexed (see above and their index state)")

    def _ensure_redis(self):
        if redis_index.live_generation() is None:
            self.stdout.write("Redis holds no index: rebuilding it from PostgreSQL.")
            self._rebuild_redis()

    def _rebuild_redis(self):
        report = rebuild_redis(progress=lambda message: self.stdout.write(f"  {message}"))
        if report.generation is None:
            raise CommandError("Another Redis rebuild is running; try again when it has finished.")
        self.stdout.write(
            f"Redis generation {report.generation} is live: {report.records} records in {report.fields} fields, "
            f"{report.live} areas live, {report.pending} pending, {report.seconds:.1f} s."
        )

    def _storage_summary(self) -> str:
        rows, size = celltable.size()
        return (
            f"Cell table: {rows} rows, {size / 2**20:.1f} MiB with indexes. "
            f"Redis: {redis_index.memory_bytes() / 2**20:.1f} MiB used."
        )
