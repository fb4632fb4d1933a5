"""The user's data files for the benchmark (--areas, --points), checked before anything else runs: a mistake in
them must not cost a data load and an index build."""

from __future__ import annotations

import argparse
import itertools
import math
from pathlib import Path

import orjson
from django.core.management.base import CommandError
from django.core.management.color import no_style
from django.db import connection

from bench import data
from providers.models import Provider

DEFAULT_SCALES = "1000,10000,50000,200000"

MAX_FILE_ERRORS = 20


def points_option(value: str) -> int | Path:
    """--points: how many points to generate, or a file of points."""
    if value.isdigit():
        if int(value) < 1:
            raise argparse.ArgumentTypeError("at least 1 point")
        return int(value)
    return Path(value)


def scales(option: str | None, file_features: int | None) -> list[int]:
    """--scales, or its default: the whole --areas file, or DEFAULT_SCALES."""
    if option is None:
        return [file_features] if file_features is not None else [int(s) for s in DEFAULT_SCALES.split(",")]
    try:
        scales = sorted({int(s) for s in option.split(",")})
    except ValueError:
        raise CommandError(f"--scales takes comma-separated area counts, e.g. 1000,10000; got {option!r}") from None
    if scales[0] < 1:
        raise CommandError("--scales: every scale needs at least 1 area")
    if file_features is not None and scales[-1] > file_features:
        raise CommandError(f"--scales {scales[-1]:,} is more than the {file_features:,} features in the --areas file")
    return scales


def _numbered_lines(path: Path, option: str):
    """(line number, line) of the non-blank lines of a user's file."""
    try:
        with path.open("rb") as lines:
            for number, line in enumerate(lines, start=1):
                if line.strip():
                    yield number, line
    except OSError as exc:
        raise CommandError(f"{option}: cannot read {path}: {exc}") from exc


def _raise_file_errors(option: str, path: Path, errors: list[str], count: int, expected: str) -> None:
    if errors:
        shown = "\n".join(errors[:MAX_FILE_ERRORS])
        more = f"\n... and {len(errors) - MAX_FILE_ERRORS} more" if len(errors) > MAX_FILE_ERRORS else ""
        raise CommandError(f"{option} {path}: {len(errors)} bad lines (expected {expected}):\n{shown}{more}")
    if not count:
        raise CommandError(f"{option} {path} is empty (expected {expected})")


def _area_problem(feature) -> str | None:
    """What makes a line unusable as an area, or None. The shape only: import_areas validates the rest as the
    API does (geometry validity, price, ...)."""
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        if isinstance(feature, dict) and feature.get("type") == "FeatureCollection":
            return "a FeatureCollection: --areas takes one Feature per line"
        return "not a GeoJSON Feature"
    geometry, properties = feature.get("geometry"), feature.get("properties")
    if not isinstance(geometry, dict) or geometry.get("type") not in ("Polygon", "MultiPolygon"):
        return "geometry: must be a Polygon or MultiPolygon"
    if not isinstance(properties, dict):
        return "properties: missing"
    provider, name, price = properties.get("provider"), properties.get("name"), properties.get("price")
    if not ((type(provider) is int and provider > 0) or (isinstance(provider, str) and provider.isdigit())):
        return f"properties.provider: must be a provider id, got {provider!r}"
    if not isinstance(name, str) or not name.strip():
        return "properties.name: missing"
    if type(price) not in (str, int, float):
        return f"properties.price: must be a number or a decimal string, got {price!r}"
    return None


def check_areas_file(path: Path) -> int:
    """The number of features in an --areas file, or a CommandError naming every bad line."""
    errors, count = [], 0
    for number, line in _numbered_lines(path, "--areas"):
        try:
            problem = _area_problem(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            problem = f"not JSON: {exc}"
        if problem:
            errors.append(f"{path}:{number}: {problem}")
        count += 1
    _raise_file_errors("--areas", path, errors, count, "one GeoJSON Feature per line")
    return count


def read_points_file(path: Path) -> list[tuple[float, float]]:
    """(lat, lng) of each line of a --points file, or a CommandError naming every bad line."""
    errors, points = [], []
    for number, line in _numbered_lines(path, "--points"):
        try:
            point = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            errors.append(f"{path}:{number}: not JSON: {exc}")
            continue
        if not isinstance(point, dict):
            errors.append(f'{path}:{number}: not a {{"lat": .., "lng": ..}} object')
            continue
        problems = [
            f"{name} must be a number from {-limit} to {limit}, got {value!r}"
            for name, limit in (("lat", 90.0), ("lng", 180.0))
            if type(value := point.get(name)) not in (int, float) or not math.isfinite(value) or abs(value) > limit
        ]
        if problems:
            errors.append(f"{path}:{number}: {'; '.join(problems)}")
        else:
            points.append((float(point["lat"]), float(point["lng"])))
    _raise_file_errors("--points", path, errors, len(points) + len(errors), 'one {"lat": .., "lng": ..} per line')
    return points


def first_features(source, count: int):
    """(line number, line) of the first `count` features of an areas file."""
    numbered = ((number, line) for number, line in enumerate(source, start=1) if line.strip())
    return itertools.islice(numbered, count)


def create_providers(owner, provider_ids: set[int], seed: int) -> None:
    """The providers an --areas file refers to that do not exist yet, with those ids and generated fields."""
    missing = sorted(provider_ids - set(Provider.objects.filter(id__in=provider_ids).values_list("id", flat=True)))
    Provider.objects.bulk_create(
        Provider(id=provider_id, owner=owner, approved=True, **fields)
        for provider_id, fields in zip(missing, data.providers(len(missing), seed), strict=True)
    )
    with connection.cursor() as cursor:  # new providers (the API, later scales) get ids after these
        for statement in connection.ops.sequence_reset_sql(no_style(), [Provider]):
            cursor.execute(statement)
