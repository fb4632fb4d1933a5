"""OpenAPI documentation of the partner endpoints (areas.api.partner): their parameters, answers and examples.
Documentation only: nothing here runs on a request."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers

from areas.changes import CHANGES_DEFAULT_LIMIT, CHANGES_LIMIT
from areas.lookups import MAX_BATCH_POINTS, MAX_LIMIT
from areas.serializers import ProviderRefSerializer

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
# Lookups are public: a partner API key is optional and buys its own rate limit (partners.limits).
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


class BatchPointsSerializer(serializers.Serializer):
    points = serializers.ListField(
        child=serializers.DictField(),
        allow_empty=False,
        max_length=MAX_BATCH_POINTS,
        help_text=f'Up to {MAX_BATCH_POINTS:,} points, each {{"lat": .., "lng": ..}}.',
    )


lookup = extend_schema(
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

batch = extend_schema(
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

trip = extend_schema(
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

changes = extend_schema(
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
