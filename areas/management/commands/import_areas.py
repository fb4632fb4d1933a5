"""manage.py import_areas FILE: bulk-load service areas from GeoJSON.

FILE is a FeatureCollection, or newline-delimited Features (one per line, `.ndjson`/`.geojsonl`), or `-` for
standard input. Each Feature is validated exactly as the API validates it (provider, name, price in
`properties`); bad ones are reported with where they are and skipped, the good ones are imported. The new areas
are then indexed (in parallel), unless --no-index leaves that to the worker.

--approve approves the providers this import brings in: those that held no service area before it (a provider is
onboarded with its file). A provider that held areas already was either approved or deliberately left unapproved
(or revoked) by staff, so a file naming it does not approve it unless --approve-existing says so. What was approved,
and what was left unapproved, is printed.
"""

import sys
import time
from collections.abc import Iterator

import orjson
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from rest_framework import serializers
from tqdm import tqdm

from areas.models import ServiceArea
from areas.serializers import ServiceAreaSerializer
from hexindex.api import areas_changed, build_index, summarise
from providers.models import Provider
from providers.services import provider_set_approval

NOT_YOUR_PROVIDER = "provider {provider} is not owned by {owner}"


class _KnownProviderField(serializers.PrimaryKeyRelatedField):
    """Providers looked up once for the whole file instead of once per feature (subclasses set `known`)."""

    known: dict[int, Provider] = {}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | str):
            self.fail("incorrect_type", data_type=type(data).__name__)
        try:
            return self.known[int(data)]
        except (KeyError, ValueError):
            self.fail("does_not_exist", pk_value=data)


def _features(stream, label: str) -> Iterator[tuple[str, object]]:
    """(where, parsed feature or parse error) for a FeatureCollection or newline-delimited Features."""
    first = stream.readline()
    try:
        document = orjson.loads(first) if first.strip() else None
    except orjson.JSONDecodeError:
        document = None
    if isinstance(document, dict) and document.get("type") == "Feature":
        yield f"{label}:1", document
        for number, line in enumerate(stream, start=2):
            if line.strip():
                try:
                    yield f"{label}:{number}", orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    yield f"{label}:{number}", exc
        return
    try:
        document = orjson.loads(first + stream.read())
    except orjson.JSONDecodeError as exc:
        raise CommandError(f"{label} is neither a GeoJSON FeatureCollection nor one Feature per line: {exc}") from exc
    if not isinstance(document, dict) or document.get("type") != "FeatureCollection":
        raise CommandError(f"{label} is neither a GeoJSON FeatureCollection nor one Feature per line")
    for number, feature in enumerate(document.get("features") or [], start=1):
        yield f"{label} feature {number}", feature


def _errors(detail, prefix="") -> list[str]:
    if isinstance(detail, dict):
        return [e for key, value in detail.items() for e in _errors(value, f"{prefix}{key}: ")]
    if isinstance(detail, list):
        return [e for value in detail for e in _errors(value, prefix)]
    return [f"{prefix}{detail}"]


class _Approvals:
    """--approve: each provider the file names is considered once, when its first valid feature is read."""

    def __init__(self, *, include_existing: bool):
        self.include_existing = include_existing
        self.seen: set[int] = set()
        self.approved: list[Provider] = []
        self.left: list[Provider] = []  # held areas before this import, without --approve-existing

    def consider(self, provider: Provider) -> None:
        if provider.pk in self.seen:
            return
        self.seen.add(provider.pk)
        if provider.approved:
            return
        if self.include_existing or not provider.service_areas.exists():
            provider_set_approval(provider=provider, approved=True)
            provider.approved = True
            self.approved.append(provider)
        else:
            self.left.append(provider)

    def report(self) -> str:
        lines = [f"Approved {len(self.approved)} providers{_names(self.approved)}."]
        if self.left:
            lines.append(
                f"Left unapproved {len(self.left)} providers that held areas before this import "
                f"(--approve-existing approves them){_names(self.left)}."
            )
        return "\n".join(lines)


def _names(providers: list[Provider]) -> str:
    return ": " + ", ".join(f"{p.pk} {p.name!r}" for p in providers) if providers else ""


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("file", help="GeoJSON FeatureCollection or newline-delimited Features; - for stdin")
        parser.add_argument("--owner", help="Only accept features for providers this user owns.")
        parser.add_argument("--batch-size", type=int, default=1000, help="Areas written per transaction.")
        parser.add_argument("--no-index", action="store_true", help="Do not index now; leave it to the worker.")
        parser.add_argument("--workers", type=int, default=None, help="Processes computing covers.")
        parser.add_argument("--max-errors", type=int, default=50, help="Errors to print (all are counted).")
        parser.add_argument("--no-progress", action="store_true")
        parser.add_argument(
            "--approve",
            action="store_true",
            help="Approve the providers this import brings in, those that held no areas before it (staff use): "
            "public lookups show them. Without it, areas of unapproved providers are imported but shown only to "
            "their owners.",
        )
        parser.add_argument(
            "--approve-existing",
            action="store_true",
            help="With --approve: also approve providers that held areas before this import (e.g. one whose "
            "approval staff revoked).",
        )

    def handle(self, *args, **options):
        started = time.perf_counter()
        if options["approve_existing"] and not options["approve"]:
            raise CommandError("--approve-existing goes with --approve")
        owner = None
        if options["owner"]:
            owner = get_user_model().objects.filter(username=options["owner"]).first()
            if owner is None:
                raise CommandError(f"no user {options['owner']!r}")
        providers = Provider.objects.in_bulk() if owner is None else Provider.objects.filter(owner=owner).in_bulk()

        class KnownProvider(_KnownProviderField):
            known = providers

        class ImportSerializer(ServiceAreaSerializer):
            provider = KnownProvider(queryset=Provider.objects.none())

        label = "stdin" if options["file"] == "-" else options["file"]
        try:
            stream = sys.stdin if options["file"] == "-" else open(options["file"], encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise CommandError(f"cannot read {label}: {exc}") from exc

        imported: list[int] = []
        rejected = 0
        approvals = _Approvals(include_existing=options["approve_existing"]) if options["approve"] else None
        batch: list[ServiceArea] = []
        with stream, tqdm(unit="feature", disable=options["no_progress"]) as bar:
            for where, feature in _features(stream, label):
                bar.update()
                if isinstance(feature, Exception):
                    problems = [f"not JSON: {feature}"]
                else:
                    serializer = ImportSerializer(data=feature)
                    problems = [] if serializer.is_valid() else _errors(serializer.errors)
                if problems:
                    rejected += 1
                    if rejected <= options["max_errors"]:
                        self.stderr.write(f"{where}: {'; '.join(problems)}")
                    continue
                if approvals is not None:
                    # Before the provider's first area is saved: whether it held any is still the file's doing.
                    approvals.consider(serializer.validated_data["provider"])
                batch.append(ServiceArea(**serializer.validated_data))
                if len(batch) >= options["batch_size"]:
                    imported += self._save(batch, queue=options["no_index"])
                    batch = []
            imported += self._save(batch, queue=options["no_index"])

        self.stdout.write(
            f"Imported {len(imported)} service areas from {label}; rejected {rejected} "
            f"({time.perf_counter() - started:.1f} s)."
        )
        if approvals is not None:
            self.stdout.write(approvals.report())
        if options["no_index"] or not imported:
            return
        index_started = time.perf_counter()
        with tqdm(total=len(imported), unit="area", disable=options["no_progress"]) as bar:
            report = build_index(imported, workers=options["workers"], progress=bar.update)
        self.stdout.write(summarise(report, time.perf_counter() - index_started))

    @staticmethod
    def _save(batch: list[ServiceArea], *, queue: bool) -> list[int]:
        """One transaction per batch: the areas, pending in the index (so lookups find them at once), and with
        `queue` a build for the worker."""
        if not batch:
            return []
        with transaction.atomic():
            ids = [area.id for area in ServiceArea.objects.bulk_create(batch)]
            areas_changed(ids, enqueue_builds=queue)
        return ids
