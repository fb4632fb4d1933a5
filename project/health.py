"""/health/ (the service and its dependencies) and /health/live/ (load balancer probes).

Anyone learns the status and which dependency fails; the figures (areas waiting for the index, the index's state)
only staff and clients in HEALTH_DETAIL_ALLOWED_NETWORKS: how much of the service runs on its slow path is nobody
else's business."""

import logging

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.views import APIView

from core.networks import address_in, client_address, parse_networks
from hexindex import api as index

logger = logging.getLogger(__name__)

# The public state of a dependency that failed. What failed, and why, goes to the log only: error texts name
# hosts, ports and versions.
UNAVAILABLE = "unavailable"


def _check_postgres() -> tuple[str, int | None]:
    """'ok' and the number of areas not live in the index yet, or 'unavailable'."""
    try:
        with connection.cursor() as cursor:
            return "ok", index.unindexed_count(cursor)
    except Exception as exc:  # any failure is reported, never raised
        logger.warning("Health check: PostgreSQL unavailable: %s: %s", exc.__class__.__name__, exc)
        return UNAVAILABLE, None


def _check_redis() -> tuple[str, str]:
    """'ok' or 'unavailable', and the state of the Redis index: live, rebuilding, missing or unavailable."""
    state, index_state = index.health()
    if state != "ok":
        logger.warning("Health check: Redis unavailable: %s", state)
        return UNAVAILABLE, index_state
    return state, index_state


# Plain strings rather than enums: drf-spectacular names an enum after its field, and these names collide with the
# index's `redis` and the overall `status`.
DEPENDENCY_STATE_HELP = "`ok`, or `unavailable` (the reason is in the service's log)"

HEALTH_RESPONSE = inline_serializer(
    "Health",
    fields={
        "status": serializers.ChoiceField(choices=["ok", "degraded", "unavailable"]),
        "postgres": serializers.CharField(help_text=DEPENDENCY_STATE_HELP),
        "redis": serializers.CharField(help_text=DEPENDENCY_STATE_HELP),
        "index": inline_serializer(
            "HealthIndex",
            required=False,
            help_text="Staff and HEALTH_DETAIL_ALLOWED_NETWORKS only.",
            fields={
                "redis": serializers.ChoiceField(choices=["live", "rebuilding", "missing", "unavailable"]),
                "lookups": serializers.ChoiceField(choices=["indexed", "postgis"]),
                "unindexed_areas": serializers.IntegerField(allow_null=True),
            },
        ),
    },
)


def _health(request):
    postgres, unindexed = _check_postgres()
    redis, index = _check_redis()
    if postgres != "ok" or redis != "ok":
        status, code = "unavailable", 503
    elif index != "live":
        status, code = "degraded", 200
    else:
        status, code = "ok", 200
    body = {"status": status, "postgres": postgres, "redis": redis}
    if _may_see_figures(request):
        lookups = "indexed" if index == "live" else "postgis"
        body["index"] = {"redis": index, "lookups": lookups, "unindexed_areas": unindexed}
    return JsonResponse(body, status=code)


def _may_see_figures(request) -> bool:
    if address_in(client_address(request), parse_networks(settings.HEALTH_DETAIL_ALLOWED_NETWORKS)):
        return True
    try:
        return bool(request.user.is_staff)  # a token, or the session
    except Exception:  # a bad token, or PostgreSQL down while one is checked: the public answer, not a 401 or 503
        return False


class HealthView(APIView):
    permission_classes = []

    def perform_authentication(self, request):
        """Lazy (see _may_see_figures): a bad token gets the public answer, not a 401."""

    @extend_schema(
        summary="Health of the service and its backing stores",
        description=(
            "503 when PostgreSQL or Redis does not answer, naming which (the reason is in the service's log). "
            "200 `degraded` when Redis answers but holds no index (after a restart, while it is rebuilt): lookups are "
            "still exact, served by PostGIS, slower. `unindexed_areas` are areas created or changed and not yet "
            "indexed by the worker (lookups find them anyway). `index` is shown to staff (session or token) and to "
            "clients in `HEALTH_DETAIL_ALLOWED_NETWORKS` only. Load balancers should probe `/health/live/` instead, "
            "which only fails when this process cannot serve lookups at all."
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
                "Healthy (public)",
                value={"status": "ok", "postgres": "ok", "redis": "ok"},
                status_codes=["200"],
            ),
            OpenApiExample(
                "Redis down",
                value={
                    "status": "unavailable",
                    "postgres": "ok",
                    "redis": "unavailable",
                    "index": {"redis": "unavailable", "lookups": "postgis", "unindexed_areas": 3},
                },
                status_codes=["503"],
            ),
            OpenApiExample(
                "PostgreSQL down",
                value={
                    "status": "unavailable",
                    "postgres": "unavailable",
                    "redis": "ok",
                    "index": {"redis": "live", "lookups": "indexed", "unindexed_areas": None},
                },
                status_codes=["503"],
            ),
        ],
    )
    def get(self, request):
        return _health(request)


health = HealthView.as_view()


LIVE_RESPONSE = inline_serializer("Live", fields={"status": serializers.CharField(help_text=DEPENDENCY_STATE_HELP)})


@extend_schema(
    summary="Liveness for load balancers",
    description=(
        "200 while this process can answer lookups (PostgreSQL answers), even with Redis down; 503 otherwise. "
        "Answered whatever the `Host` header: load balancers probe each task by its IP address."
    ),
    auth=[],
    responses={200: LIVE_RESPONSE, 503: LIVE_RESPONSE},
    examples=[
        OpenApiExample("Live", value={"status": "ok"}, status_codes=["200"]),
        OpenApiExample("PostgreSQL down", value={"status": UNAVAILABLE}, status_codes=["503"]),
    ],
)
@api_view(["GET"])
@authentication_classes([])
@permission_classes([])
def live(request):
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        logger.warning("Liveness check: PostgreSQL unavailable: %s: %s", exc.__class__.__name__, exc)
        return JsonResponse({"status": UNAVAILABLE}, status=503)
    return JsonResponse({"status": "ok"})
