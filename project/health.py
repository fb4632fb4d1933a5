from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from redis import Redis
from rest_framework import serializers
from rest_framework.decorators import api_view, authentication_classes, permission_classes


def _check_postgres() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception as exc:  # any failure is reported, never raised
        return f"error: {exc.__class__.__name__}: {exc}".strip()


def _check_redis() -> str:
    try:
        client = Redis.from_url(
            settings.HEXINDEX_REDIS_URL,
            socket_connect_timeout=settings.REDIS_SOCKET_TIMEOUT,
            socket_timeout=settings.REDIS_SOCKET_TIMEOUT,
        )
        client.ping()
        client.close()
        return "ok"
    except Exception as exc:
        return f"error: {exc.__class__.__name__}: {exc}".strip()


HEALTH_RESPONSE = inline_serializer(
    "Health",
    fields={"status": serializers.CharField(), "postgres": serializers.CharField(), "redis": serializers.CharField()},
)


@extend_schema(
    summary="Liveness of the service and its backing stores",
    description="200 when PostgreSQL and Redis answer, 503 naming the one that does not.",
    auth=[],
    responses={200: HEALTH_RESPONSE, 503: HEALTH_RESPONSE},
    examples=[
        OpenApiExample("Healthy", value={"status": "ok", "postgres": "ok", "redis": "ok"}, status_codes=["200"]),
        OpenApiExample(
            "Redis down",
            value={"status": "unavailable", "postgres": "ok", "redis": "error: ConnectionError: Connection refused"},
            status_codes=["503"],
        ),
    ],
)
@api_view(["GET"])
@authentication_classes([])
@permission_classes([])
def health(request):
    checks = {"postgres": _check_postgres(), "redis": _check_redis()}
    healthy = all(value == "ok" for value in checks.values())
    return JsonResponse({"status": "ok" if healthy else "unavailable", **checks}, status=200 if healthy else 503)
