"""manage.py reindex: build the hexagon index of areas in bulk, or rebuild its Redis side from PostgreSQL."""

import time

from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from tqdm import tqdm

from areas.models import ServiceArea
from hexindex import store
from hexindex.bulk import build_index, summarise
from hexindex.services import areas_to_build, rebuild_redis


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
            from hexindex.tasks import sweep_index

            sweep_index.delay()
            self.stdout.write("Queued an index sweep: the worker indexes pending areas and rebuilds Redis if needed.")
            return
        if options["redis_only"]:
            self._rebuild_redis(progress=not options["no_progress"])
            return
        self._build(options)

    def _build(self, options):
        started = time.perf_counter()
        if options["force"]:
            areas = ServiceArea.objects.order_by("id")
            if options["ids"]:
                areas = areas.filter(id__in=options["ids"])
            area_ids = list(areas.values_list("id", flat=True))
        else:
            area_ids = areas_to_build(options["ids"] or None)
        if not area_ids:
            self.stdout.write("Nothing to index: every area is live in the index.")
            self._ensure_redis(progress=not options["no_progress"])
            return

        with tqdm(total=len(area_ids), unit="area", disable=options["no_progress"]) as bar:
            report = build_index(
                area_ids,
                force=options["force"],
                workers=options["workers"],
                batch_size=options["batch_size"],
                progress=bar.update,
            )
        self._ensure_redis(progress=not options["no_progress"])
        elapsed = time.perf_counter() - started

        self.stdout.write(summarise(report, elapsed))
        self.stdout.write(self._storage_summary())
        for area_id, error in list(report.failed.items())[:20]:
            self.stderr.write(f"area {area_id}: {error}")
        if report.failed:
            raise CommandError(f"{len(report.failed)} areas could not be indexed (see above and their index state)")

    def _ensure_redis(self, *, progress: bool):
        if store.live_generation() is None:
            self.stdout.write("Redis holds no index: rebuilding it from PostgreSQL.")
            self._rebuild_redis(progress=progress)

    def _rebuild_redis(self, *, progress: bool):
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM hexindex_areacell")
            (rows,) = cursor.fetchone()
        with tqdm(total=rows, unit="cell", disable=not progress) as bar:
            report = rebuild_redis(progress=bar.update)
        if report.generation is None:
            raise CommandError("Another Redis rebuild is running; try again when it has finished.")
        self.stdout.write(
            f"Redis generation {report.generation} is live: {report.members} members in {report.keys} keys, "
            f"{report.live} areas live, {report.pending} pending, {report.seconds:.1f} s."
        )

    def _storage_summary(self) -> str:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*), pg_total_relation_size('hexindex_areacell') FROM hexindex_areacell")
            rows, size = cursor.fetchone()
        return (
            f"Cell table: {rows} rows, {size / 2**20:.1f} MiB with indexes. "
            f"Redis: {store.memory_bytes() / 2**20:.1f} MiB used."
        )
