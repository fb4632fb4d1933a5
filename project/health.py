from django.db import connection
from django.http import JsonResponse
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view, authentication_classes, permission_classes

from hexindex import api as index


def _error(exc: Exception) -> str:
    return f"error: {exc.__class__.__name__}: {exc}".strip()


def _check_postgres() -> tuple[str, int | None]:
    """'ok' and the number of areas not live in the index yet, or the error."""
    try:
        with connection.cursor() as cursor:
            return "ok", index.unindexed_count(cursor)
    except Exception as exc:  # any failure is reported, never raised
        return _error(exc), None


def _check_redis() -> tuple[str, str]:
    """'ok' and the state of the Redis index: live, rebuilding or missing (or the error, and unavailable)."""
    return index.health()


HEALTH_RESPONSE = inline_serializer(
    "Health",
    fields={
        "status": serializers.ChoiceField(choices=["ok", "degraded", "unavailable"]),
        "postgres": serializers.CharField(),
        "redis": serializers.CharField(),
        "index": inline_serializer(
            "HealthIndex",
            fields={
                "redis": serializers.ChoiceField(choices=["live", "rebuilding", "missing", "unavailable"]),
                "lookups": serializers.ChoiceField(choices=["indexed", "postgis"]),
                "unindexed_areas": serializers.IntegerField(allow_null=True),
            },
        ),
    },
)


@extend_schema(
    summary="Health of the service and its backing stores",
    description=(
        "503 when PostgreSQL or Redis does not answer, naming which. 200 `degraded` when Redis answers but holds "
        "no index (after a restart, while it is rebuilt): lookups are still exact, served by PostGIS, slower. "
        "`unindexed_areas` are areas created or changed and not yet indexed by the worker (lookups find them "
        "anyway). Load balancers should probe `/health/live/` instead, which only fails when this process "
        "cannot serve lookups at all."
    ),
    auth=[],
    responses={200: HEALTH_RESPONSE, 503: HEALTH_RESPONSE},
    examples=[
        OpenApiExample(
            "Healthy",
            value={
                "status": "ok",
                "postgres": "ok",
                "redis": "ok",
                "index": {"redis": "live", "lookups": "indexed", "unindexed_areas": 0},
            },
            status_codes=["200"],
        ),
        OpenApiExample(
            "Redis down",
            value={
                "status": "unavailable",
                "postgres": "ok",
                "redis": "error: ConnectionError: Error 111 connecting to 127.0.0.1:6379. Connection refused.",
                "index": {"redis": "unavailable", "lookups": "postgis", "unindexed_areas": 3},
            },
            status_codes=["503"],
        ),
    ],
)
@api_view(["GET"])
@authentication_classes([])
@permission_classes([])
def health(request):
    postgres, unindexed = _check_postgres()
    redis, index = _check_redis()
    if postgres != "ok" or redis != "ok":
        status, code = "unavailable", 503
    elif index != "live":
        status, code = "degraded", 200
    else:
        status, code = "ok", 200
    body = {
        "status": status,
        "postgres": postgres,
        "redis": redis,
        "index": {"redis": index, "lookups": "indexed" if index == "live" else "postgis", "unindexed_areas": unindexed},
    }
    return JsonResponse(body, status=code)


@extend_schema(
    summary="Liveness for load balancers",
    description="200 while this process can answer lookups (PostgreSQL answers), even with Redis down.",
    auth=[],
    responses={200: inline_serializer("Live", fields={"status": serializers.CharField()}), 503: None},
)
@api_view(["GET"])
@authentication_classes([])
@permission_classes([])
def live(request):
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        return JsonResponse({"status": _error(exc)}, status=503)
    return JsonResponse({"status": "ok"})
