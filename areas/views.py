import hashlib
import json
import math
import re
import time

import orjson
from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_view, inline_serializer
from rest_framework import permissions, serializers, viewsets
from rest_framework.exceptions import AuthenticationFailed, PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from areas.changes import changes_since, parse_cursor
from areas.filters import ServiceAreaFilter, StrictInBBoxFilter
from areas.listing import GeometryBudgetPagination, parse_geometry_mode, visible_areas, with_listed_geometry
from areas.lookups import (
    MAX_BATCH_POINTS,
    MAX_LIMIT,
    LookupFilters,
    batch_bodies,
    filter_body,
    parse_filters,
    trip,
)
from areas.models import ServiceArea
from areas.serializers import ProviderRefSerializer, ServiceAreaSerializer
from areas.services import area_create, area_delete, area_update
from hexindex.api import lookup, lookup_exact
from partners.access import Gate, admit, check, finish, settle
from project import metrics
from project.concurrency import IF_MATCH, ETagMixin
from project.errors import dependency_error_response
from providers.permissions import can_manage_provider

NOT_YOUR_PROVIDER = "Only the provider's owner or staff may manage its service areas."
COORDINATE_MISSING = "This query parameter is required."
COORDINATE_NOT_A_NUMBER = "Must be a decimal number, e.g. {example}."
COORDINATE_OUT_OF_RANGE = "Must be between {low} and {high}."
FLAG_INVALID = "Must be true or false."
INCLUDE_MINE_NEEDS_TOKEN = "include_mine=true shows your own areas too: send your API token (Authorization: Token ...)."

# Plain ASCII decimal notation only: Python's float() would also take "nan", "inf", "1_000", " 1 " and digits of
# other scripts ("٤٠").
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_COORDINATES = (("lat", -90.0, 90.0, "40.6413"), ("lng", -180.0, 180.0, "-73.7781"))


def parse_point(query_params) -> tuple[float, float]:
    """`lat` and `lng` from a query string, or a ValidationError naming each bad one."""
    values, errors = {}, {}
    for name, low, high, example in _COORDINATES:
        raw = query_params.get(name)
        if raw is None or raw == "":
            errors[name] = [COORDINATE_MISSING]
        elif not _DECIMAL.fullmatch(raw) or not math.isfinite(value := float(raw)):
            errors[name] = [COORDINATE_NOT_A_NUMBER.format(example=example)]
        elif not low <= value <= high:
            errors[name] = [COORDINATE_OUT_OF_RANGE.format(low=low, high=high)]
        else:
            values[name] = value
    if errors:
        raise ValidationError(errors)
    return values["lat"], values["lng"]


def _check_can_manage(user, provider):
    if not can_manage_provider(user, provider):
        raise PermissionDenied(NOT_YOUR_PROVIDER)


GEOMETRY_PARAMETER = OpenApiParameter(
    "geometry",
    OpenApiTypes.STR,
    enum=["full", "simplified", "none"],
    description="What geometry to return: `full` (default), `simplified` (to a thousandth of each area's size, for "
    "overview maps) or `none`. Other users' geometries are never shown (`null`).",
)


@extend_schema_view(
    list=extend_schema(
        summary="List service areas",
        description="A paginated GeoJSON FeatureCollection: your areas, and other users' areas of approved providers "
        "(without geometry); staff see all. Filter by `provider` and by `in_bbox`. A page carries at most "
        "LIST_MAX_POSITIONS_PER_PAGE positions of geometry (250,000 by default); a heavier one is a 400 that says so.",
        parameters=[GEOMETRY_PARAMETER],
    ),
    create=extend_schema(
        summary="Create a service area",
        description="Only for a provider you own (or as staff). Limits per owner (staff are exempt): number of "
        "areas, positions over all areas (403 naming the quota), and one area's span (400 on `geometry`).",
    ),
    retrieve=extend_schema(summary="Get a service area", parameters=[GEOMETRY_PARAMETER]),
    update=extend_schema(
        summary="Replace a service area", description="Owner of its provider or staff only.", parameters=[IF_MATCH]
    ),
    partial_update=extend_schema(
        summary="Update some members of a service area",
        description='Send a Feature with only what changes, e.g. `{"type": "Feature", "properties": '
        '{"price": "50.00"}}`: only those fields are written.',
        parameters=[IF_MATCH],
    ),
    destroy=extend_schema(
        summary="Delete a service area", description="Owner of its provider or staff only.", parameters=[IF_MATCH]
    ),
)
class ServiceAreaViewSet(ETagMixin, viewsets.ModelViewSet):
    queryset = ServiceArea.objects.select_related("provider", "index_state")
    serializer_class = ServiceAreaSerializer
    pagination_class = GeometryBudgetPagination
    filter_backends = [DjangoFilterBackend, StrictInBBoxFilter]
    filterset_class = ServiceAreaFilter
    bbox_filter_field = "geometry"
    bbox_filter_include_overlapping = True
    permission_classes = [permissions.IsAuthenticated]

    def get_queryset(self):
        queryset = visible_areas(self.request.user, super().get_queryset())
        if self.request.method in permissions.SAFE_METHODS:
            # Reads carry the geometry asked for (and only the viewer's own, or all for staff); nothing else of it
            # is loaded.
            mode = parse_geometry_mode(self.request.query_params)
            queryset = with_listed_geometry(queryset, user=self.request.user, mode=mode)
        return queryset

    def check_object_permissions(self, request, obj):
        super().check_object_permissions(request, obj)
        if request.method not in permissions.SAFE_METHODS:
            _check_can_manage(request.user, obj.provider)

    def perform_create(self, serializer):
        _check_can_manage(self.request.user, serializer.validated_data["provider"])
        serializer.instance = self.etag_object = area_create(data=serializer.validated_data)

    def perform_update(self, serializer):
        if "provider" in serializer.validated_data:
            _check_can_manage(self.request.user, serializer.validated_data["provider"])
        serializer.instance = self.etag_object = area_update(
            area=serializer.instance, data=serializer.validated_data, if_match=self.if_match
        )

    def perform_destroy(self, instance):
        area_delete(area=instance, if_match=self.if_match)


FILTER_PARAMETERS = [
    OpenApiParameter(
        "provider", OpenApiTypes.STR, description="Only these providers: ids, repeated or comma-separated (`3,5`)."
    ),
    OpenApiParameter("currency", OpenApiTypes.STR, description="Only prices in this ISO 4217 currency, e.g. `USD`."),
    OpenApiParameter("language", OpenApiTypes.STR, description="Only providers speaking this ISO 639-1 language."),
    OpenApiParameter("max_price", OpenApiTypes.DECIMAL, description="Only areas at most this price."),
    OpenApiParameter("limit", OpenApiTypes.INT, description=f"At most this many results (1 to {MAX_LIMIT:,})."),
    OpenApiParameter(
        "per_provider",
        OpenApiTypes.STR,
        enum=["cheapest"],
        description="`cheapest`: one result per provider, its cheapest area.",
    ),
]
# Lookups are public: a partner API key is optional and buys its own rate limit (partners.access).
PARTNER_AUTH = [{"ApiKeyAuth": []}, {}]
RATE_LIMITED = inline_serializer(
    "RateLimited", fields={"detail": serializers.CharField(), "code": serializers.CharField(default="rate_limited")}
)
LOOKUP_RESULT_EXAMPLE = {
    "id": 7,
    "name": "JFK airport",
    "price": "45.00",
    "currency": "USD",
    "provider": {"id": 3, "name": "Acme Shuttles"},
}


class LookupResultSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="Service area id.")
    name = serializers.CharField(help_text="Service area name.")
    price = serializers.DecimalField(max_digits=12, decimal_places=2, help_text="In `currency`.")
    currency = serializers.CharField(help_text="ISO 4217 code of the provider.")
    provider = ProviderRefSerializer()


class LookupResponseSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    results = LookupResultSerializer(many=True)


class TripAreaSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    price = serializers.DecimalField(max_digits=12, decimal_places=2)


class TripResultSerializer(serializers.Serializer):
    provider = ProviderRefSerializer()
    currency = serializers.CharField()
    pickup = TripAreaSerializer(help_text="The provider's cheapest area at the pickup point.")
    dropoff = TripAreaSerializer(help_text="The provider's cheapest area at the drop-off point.")


class TripResponseSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    results = TripResultSerializer(many=True)


@extend_schema(
    summary="Which providers serve this point, and at what price?",
    description=(
        "Every service area whose geometry covers the point (a point on an area's boundary counts as inside), "
        "cheapest first, then by id. Only providers approved by staff are shown. Public: no token needed."
    ),
    auth=PARTNER_AUTH,
    parameters=[
        OpenApiParameter("lat", OpenApiTypes.DOUBLE, required=True, description="Latitude, -90 to 90."),
        OpenApiParameter("lng", OpenApiTypes.DOUBLE, required=True, description="Longitude, -180 to 180."),
        OpenApiParameter(
            "include_mine",
            OpenApiTypes.BOOL,
            description="With your token: also your own areas whose provider is not approved yet (public lookups "
            "show approved providers only).",
        ),
        *FILTER_PARAMETERS,
    ],
    responses={
        200: LookupResponseSerializer,
        429: RATE_LIMITED,
        400: inline_serializer(
            "LookupError",
            fields={
                "lat": serializers.ListField(child=serializers.CharField(), required=False),
                "lng": serializers.ListField(child=serializers.CharField(), required=False),
            },
        ),
    },
    examples=[
        OpenApiExample(
            "Two providers serve JFK",
            value={
                "count": 2,
                "results": [
                    {
                        "id": 7,
                        "name": "JFK airport",
                        "price": "45.00",
                        "currency": "USD",
                        "provider": {"id": 3, "name": "Acme Shuttles"},
                    },
                    {
                        "id": 12,
                        "name": "New York City",
                        "price": "60.00",
                        "currency": "USD",
                        "provider": {"id": 5, "name": "Big Apple Cabs"},
                    },
                ],
            },
            response_only=True,
            status_codes=["200"],
        ),
        OpenApiExample(
            "Latitude out of range", value={"lat": ["Must be between -90.0 and 90.0."]}, status_codes=["400"]
        ),
    ],
)
class LookupView(APIView):
    """Documented as a DRF view, served as a plain Django one: a public read-only GET needs no content negotiation,
    authentication, throttling or request wrapping (and, through project.lean, no middleware)."""

    authentication_classes = []
    permission_classes = [permissions.AllowAny]

    def dispatch(self, request, *args, **kwargs):
        if request.method == "OPTIONS" and request.headers.get("Access-Control-Request-Method"):
            return preflight(request)
        if request.method not in ("GET", "HEAD"):
            return super().dispatch(request, *args, **kwargs)  # DRF's 405 with its Allow header
        return lookup_response(request)

    def get(self, request):
        return lookup_response(request)  # for the schema; dispatch answers GET itself


def lookup_response(request) -> HttpResponse:
    try:
        lat, lng = parse_point(request.GET)
        include_mine = parse_flag(request.GET, "include_mine")
        filters = parse_filters(request.GET)
    except ValidationError as exc:
        return cors(request, JsonResponse(exc.detail, status=400))
    started = time.perf_counter()
    try:
        owner = None
        if include_mine:
            owner = _owner(request)
            if isinstance(owner, HttpResponse):
                return cors(request, owner)
        gate = check(request, kind="lookup", owner_id=owner.id if owner is not None else None)
        if gate.refused is not None:
            return cors(request, gate.refused)
        response = _lookup_response(request, lat, lng, owner, filters, started, gate)
        admission, refused = settle(gate)  # the counters went with the lookup's Redis read
        return cors(request, refused if refused is not None else finish(response, admission))
    except Exception as exc:  # the lean path has no middleware: a database outage is answered here
        metrics.lookup_failed(time.perf_counter() - started)
        if (unavailable := dependency_error_response(exc)) is not None:
            return cors(request, unavailable)
        raise


def _owner(request):
    """The user whose token an include_mine lookup carries, or the 401 to answer."""
    try:
        authenticators = [authenticator() for authenticator in api_settings.DEFAULT_AUTHENTICATION_CLASSES]
        user = Request(request, authenticators=authenticators).user
    except AuthenticationFailed as exc:
        return JsonResponse({"detail": str(exc.detail)}, status=401, headers={"WWW-Authenticate": "Token"})
    if not user.is_authenticated:
        return JsonResponse({"detail": INCLUDE_MINE_NEEDS_TOKEN}, status=401, headers={"WWW-Authenticate": "Token"})
    return user


def _lookup_response(request, lat, lng, owner, filters: LookupFilters, started: float, gate: Gate) -> HttpResponse:
    if owner is not None:
        # An owner testing areas the public does not see yet: rare, so answered by the exact query.
        return JsonBody(filter_body(lookup_exact(lat=lat, lng=lng, owner_id=owner.id).body, filters), private=True)
    result = lookup(lat=lat, lng=lng, also=gate.also)
    metrics.lookup_answered(result, time.perf_counter() - started)
    # The body arrives serialised: results are cached as JSON and spliced together, not re-encoded.
    return conditional(request, JsonBody(filter_body(result.body, filters)))


class JsonBody(HttpResponse):
    """A lookup answer with its validators: an ETag that changes whenever the body does, and `no-cache` (caches may
    keep it but must revalidate: with If-None-Match that costs a 304 and no body, and an answer is never stale)."""

    def __init__(self, body: bytes, *, private: bool = False):
        super().__init__(body, content_type="application/json")
        self["ETag"] = f'"{hashlib.blake2b(body, digest_size=12).hexdigest()}"'
        self["Cache-Control"] = "private, no-cache" if private else "no-cache"


def conditional(request, response: JsonBody) -> HttpResponse:
    """304 Not Modified when the client's If-None-Match names the current ETag (RFC 9110, weak comparison)."""
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match and response.status_code == 200:
        etag = response["ETag"]
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        if "*" in tags or etag in tags:
            not_modified = HttpResponse(status=304)
            for header in ("ETag", "Cache-Control"):
                not_modified[header] = response[header]
            return not_modified
    return response


def cors(request, response: HttpResponse) -> HttpResponse:
    """CORS for the lean lookup paths (the middleware stack, where django-cors-headers runs, is skipped there)."""
    origin = request.headers.get("Origin")
    if origin and (settings.CORS_ALLOW_ALL_ORIGINS or origin in settings.CORS_ALLOWED_ORIGINS):
        response["Access-Control-Allow-Origin"] = origin
        response["Access-Control-Expose-Headers"] = ", ".join(settings.CORS_EXPOSE_HEADERS)
        response["Vary"] = "Origin"
    return response


def preflight(request) -> HttpResponse:
    """A browser asking whether a cross-origin GET (with an Authorization or If-None-Match header) may be sent."""
    response = cors(request, HttpResponse(status=204))
    if "Access-Control-Allow-Origin" in response:
        response["Access-Control-Allow-Methods"] = "GET, HEAD, OPTIONS"
        response["Access-Control-Allow-Headers"] = ", ".join(settings.CORS_ALLOW_HEADERS)
        response["Access-Control-Max-Age"] = "86400"
    return response


def parse_flag(query_params, name: str) -> bool:
    raw = query_params.get(name)
    if raw is None or raw in ("false", "0"):
        return False
    if raw in ("true", "1"):
        return True
    raise ValidationError({name: [FLAG_INVALID]})


class BatchPointsSerializer(serializers.Serializer):
    points = serializers.ListField(
        child=serializers.DictField(),
        allow_empty=False,
        max_length=MAX_BATCH_POINTS,
        help_text=f'Up to {MAX_BATCH_POINTS:,} points, each {{"lat": .., "lng": ..}}.',
    )


@extend_schema(
    summary="Look up many points at once",
    description=f"Up to {MAX_BATCH_POINTS:,} points; `results[i]` is exactly the lookup's body for `points[i]`. The "
    "lookup's filters apply to every point (as query parameters). Public.",
    auth=PARTNER_AUTH,
    request=BatchPointsSerializer,
    parameters=FILTER_PARAMETERS,
    responses={
        200: inline_serializer("BatchLookupResponse", fields={"results": LookupResponseSerializer(many=True)}),
        429: RATE_LIMITED,
    },
    examples=[
        OpenApiExample(
            "Two points",
            value={"points": [{"lat": 40.6413, "lng": -73.7781}, {"lat": 51.47, "lng": -0.4543}]},
            request_only=True,
        ),
        OpenApiExample(
            "Their answers",
            value={"results": [{"count": 1, "results": [LOOKUP_RESULT_EXAMPLE]}, {"count": 0, "results": []}]},
            response_only=True,
            status_codes=["200"],
        ),
    ],
)
class BatchLookupView(APIView):
    authentication_classes = []
    permission_classes = [permissions.AllowAny]
    throttle_classes = []

    def post(self, request):
        filters = parse_filters(request.query_params)
        serializer = BatchPointsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        points, errors = [], {}
        for i, point in enumerate(serializer.validated_data["points"]):
            try:
                points.append(parse_point(_as_query(point)))
            except ValidationError as exc:
                errors[str(i)] = exc.detail
        if errors:
            raise ValidationError({"points": errors})
        admission, refused = admit(request, kind="batch", points=len(points))
        if refused is not None:
            return refused
        started = time.perf_counter()
        try:
            bodies = batch_bodies(points, filters)
        except Exception:
            metrics.lookup_failed(time.perf_counter() - started)
            raise  # a dependency error becomes a JSON 503 in the exception handler
        metrics.batch_answered(len(points), time.perf_counter() - started)
        return finish(HttpResponse(b'{"results":[%s]}' % b",".join(bodies), content_type="application/json"), admission)


def _as_query(point: dict) -> dict:
    """A point's lat/lng as the strings a query string would carry, so both are validated the same way. The standard
    library writes any value JSON can hold (orjson refuses integers beyond 64 bits: a 500 once)."""
    return {key: (value if isinstance(value, str) else json.dumps(value)) for key, value in point.items()}


@extend_schema(
    summary="Which providers serve both ends of a trip?",
    description="Providers that serve the pickup and the drop-off point, each with its cheapest area (and price) at "
    "each end; ordered by the pickup price, then the drop-off price. Same exactness as the lookup; its filters "
    "apply. Public.",
    auth=PARTNER_AUTH,
    parameters=[
        OpenApiParameter("from_lat", OpenApiTypes.DOUBLE, required=True, description="Pickup latitude."),
        OpenApiParameter("from_lng", OpenApiTypes.DOUBLE, required=True, description="Pickup longitude."),
        OpenApiParameter("to_lat", OpenApiTypes.DOUBLE, required=True, description="Drop-off latitude."),
        OpenApiParameter("to_lng", OpenApiTypes.DOUBLE, required=True, description="Drop-off longitude."),
        *FILTER_PARAMETERS,
    ],
    responses={200: TripResponseSerializer, 429: RATE_LIMITED},
    examples=[
        OpenApiExample(
            "JFK to Manhattan",
            value={
                "count": 1,
                "results": [
                    {
                        "provider": {"id": 3, "name": "Acme Shuttles"},
                        "currency": "USD",
                        "pickup": {"id": 7, "name": "JFK airport", "price": "45.00"},
                        "dropoff": {"id": 9, "name": "Manhattan", "price": "60.00"},
                    }
                ],
            },
            response_only=True,
            status_codes=["200"],
        )
    ],
)
class TripLookupView(APIView):
    authentication_classes = []
    permission_classes = [permissions.AllowAny]

    def dispatch(self, request, *args, **kwargs):
        if request.method not in ("GET", "HEAD"):
            return super().dispatch(request, *args, **kwargs)
        return cors(request, trip_response(request))

    def get(self, request):
        return trip_response(request)  # for the schema; dispatch answers GET itself


def trip_response(request) -> HttpResponse:
    query = request.GET
    try:
        errors = {}
        ends = []
        for prefix in ("from", "to"):
            try:
                ends.append(parse_point({"lat": query.get(f"{prefix}_lat"), "lng": query.get(f"{prefix}_lng")}))
            except ValidationError as exc:
                errors.update({f"{prefix}_{name}": messages for name, messages in exc.detail.items()})
        filters = parse_filters(query)
        if errors:
            raise ValidationError(errors)
    except ValidationError as exc:
        return JsonResponse(exc.detail, status=400)
    try:
        admission, refused = admit(request, kind="trip", points=2)
        if refused is not None:
            return refused
        body = orjson.dumps(trip(pickup=ends[0], dropoff=ends[1], filters=filters))
    except Exception as exc:
        if (unavailable := dependency_error_response(exc)) is not None:
            return unavailable
        raise
    return finish(conditional(request, JsonBody(body)), admission)


CHANGES_LIMIT = 1000
CHANGES_DEFAULT_LIMIT = 500


@extend_schema(
    summary="What changed in public lookups since a cursor",
    description="Areas created, updated (`fields`: geometry, name, price, provider) or deleted, as public lookups "
    "see them: approving a provider lists its areas as created, revoking it as deleted. Start without `since`, "
    "then always pass the `cursor` of the previous answer; `more` says whether to ask again at once. A partner "
    "caching lookup answers refreshes exactly the areas listed. Public.",
    auth=PARTNER_AUTH,
    parameters=[
        OpenApiParameter(
            "since",
            OpenApiTypes.STR,
            description="The `cursor` of the previous answer; `now` to start after the newest change (no history); "
            "nothing for the whole history. A cursor this feed never issued is a 400.",
        ),
        OpenApiParameter(
            "limit",
            OpenApiTypes.INT,
            description=f"At most this many changes: 1 to {CHANGES_LIMIT}, {CHANGES_DEFAULT_LIMIT} by default.",
        ),
    ],
    responses={
        200: inline_serializer(
            "ChangeFeed",
            fields={
                "changes": inline_serializer(
                    "AreaChange",
                    fields={
                        "cursor": serializers.CharField(),
                        "area": serializers.IntegerField(),
                        "provider": serializers.IntegerField(),
                        "kind": serializers.ChoiceField(choices=["created", "updated", "deleted"]),
                        "fields": serializers.ListField(child=serializers.CharField()),
                        "changed_at": serializers.DateTimeField(),
                    },
                    many=True,
                ),
                "cursor": serializers.CharField(),
                "more": serializers.BooleanField(),
            },
        ),
        429: RATE_LIMITED,
    },
    examples=[
        OpenApiExample(
            "Two changes",
            value={
                "changes": [
                    {
                        "cursor": "7341-2210",
                        "area": 13,
                        "provider": 8,
                        "kind": "updated",
                        "fields": ["price"],
                        "changed_at": "2026-11-28T09:00:00Z",
                    },
                    {
                        "cursor": "7342-2211",
                        "area": 14,
                        "provider": 8,
                        "kind": "deleted",
                        "fields": [],
                        "changed_at": "2026-11-28T09:00:02Z",
                    },
                ],
                "cursor": "7342-2211",
                "more": False,
            },
            response_only=True,
        )
    ],
)
class ChangeFeedView(APIView):
    authentication_classes = []
    permission_classes = [permissions.AllowAny]

    def get(self, request):
        cursor = parse_cursor(request.query_params.get("since"))
        raw_limit = request.query_params.get("limit", str(CHANGES_DEFAULT_LIMIT))
        if not raw_limit.isascii() or not raw_limit.isdigit() or not 1 <= int(raw_limit) <= CHANGES_LIMIT:
            raise ValidationError({"limit": [f"A number from 1 to {CHANGES_LIMIT}."]})
        admission, refused = admit(request, kind="feed")
        if refused is not None:
            return refused
        return finish(Response(changes_since(cursor, limit=int(raw_limit))), admission)
