from datetime import date, timedelta

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import permissions, status, viewsets
from rest_framework.exceptions import NotAuthenticated, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from partners import usage
from partners.keys import partner_for_request, raw_key
from partners.models import KeyUsage, Partner, PartnerKey
from partners.serializers import KeyUsageSerializer, NewPartnerKeySerializer, PartnerKeySerializer, PartnerSerializer
from partners.services import key_create, key_revoke, key_update

MAX_USAGE_DAYS = 366
NEED_KEY_OR_STAFF = "Send your partner API key (X-API-Key), or a staff token."

KEY_EXAMPLE = {
    "prefix": "Xk3v9QaL",
    "name": "Booking engine (production)",
    "partner": 4,
    "rate_per_minute": 600,
    "expiry_date": "2027-11-29T00:00:00Z",
    "expired": False,
    "revoked": False,
    "created": "2026-11-29T09:00:00Z",
}


@extend_schema_view(
    list=extend_schema(summary="List partners (staff)"),
    create=extend_schema(summary="Create a partner (staff)"),
    retrieve=extend_schema(summary="Get a partner (staff)"),
    update=extend_schema(summary="Replace a partner (staff)"),
    partial_update=extend_schema(summary="Update a partner (staff)"),
    destroy=extend_schema(summary="Delete a partner, its keys and their usage (staff)"),
)
class PartnerViewSet(viewsets.ModelViewSet):
    """Partners are the companies whose systems call the lookup; staff manage them and their keys."""

    queryset = Partner.objects.all()
    serializer_class = PartnerSerializer
    permission_classes = [permissions.IsAdminUser]


@extend_schema_view(
    list=extend_schema(summary="List partner API keys (staff)"),
    retrieve=extend_schema(summary="Get a partner API key (staff)"),
    create=extend_schema(
        summary="Create a partner API key (staff)",
        description="The answer's `key` is the only time the key is shown: hand it to the partner, who sends it as "
        "`X-API-Key`. `rate_per_minute` is in points looked up (a batch counts its points, a trip 2).",
        request=PartnerKeySerializer,
        responses={201: NewPartnerKeySerializer},
        examples=[
            OpenApiExample(
                "New key",
                value={"partner": 4, "name": "Booking engine (production)", "expiry_date": "2027-11-29T00:00:00Z"},
                request_only=True,
            ),
            OpenApiExample(
                "Created",
                value={**KEY_EXAMPLE, "key": "Xk3v9QaL.kP2oWq8xZr5nV1bT7yU3eM6cA9sD4fG0"},
                response_only=True,
                status_codes=["201"],
            ),
        ],
    ),
    partial_update=extend_schema(summary="Rename a key, change its limit or expiry (staff)"),
    update=extend_schema(summary="Replace a key's name, limit and expiry (staff)"),
    destroy=extend_schema(
        summary="Revoke a partner API key (staff)",
        description="Refused from the next request on (every web process hears of it). The key is kept, revoked, "
        "with its usage history; revoking cannot be undone.",
    ),
)
class PartnerKeyViewSet(viewsets.ModelViewSet):
    queryset = PartnerKey.objects.select_related("partner")
    serializer_class = PartnerKeySerializer
    permission_classes = [permissions.IsAdminUser]
    lookup_field = "prefix"
    filterset_fields = ["partner", "revoked"]

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        record, key = key_create(**serializer.validated_data)
        record.key = key
        return Response(NewPartnerKeySerializer(record).data, status=status.HTTP_201_CREATED)

    def perform_update(self, serializer):
        serializer.instance = key_update(key=serializer.instance, data=serializer.validated_data)

    def perform_destroy(self, instance):
        key_revoke(key=instance)


def _day(query_params, name: str, default: date) -> date:
    raw = query_params.get(name)
    if raw is None:
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ValidationError({name: ["A date, e.g. 2026-11-29."]}) from None


@extend_schema(
    summary="Usage per key and day",
    description="Single lookups, batches and the points in them, trips and change-feed pages answered, and requests "
    "refused with 429, per key and UTC day (today's "
    "figures are up to the minute). With a partner API key (`X-API-Key`): your own keys. With a staff token: every "
    "key, and anonymous callers together (`key`: null); filter by `partner` or `key`. Newest day first.",
    auth=[{"ApiKeyAuth": []}, {"knoxApiToken": []}],
    parameters=[
        OpenApiParameter("since", OpenApiTypes.DATE, description="First day (default: 30 days ago)."),
        OpenApiParameter("until", OpenApiTypes.DATE, description="Last day (default: today)."),
        OpenApiParameter("partner", OpenApiTypes.INT, description="Staff: one partner's keys."),
        OpenApiParameter("key", OpenApiTypes.STR, description="Staff: one key (its prefix)."),
    ],
    responses={200: KeyUsageSerializer(many=True)},
    examples=[
        OpenApiExample(
            "Two days of one key",
            value=[
                {
                    "day": "2026-11-29",
                    "key": "Xk3v9QaL",
                    "key_name": "Booking engine (production)",
                    "partner": 4,
                    "lookups": 18250,
                    "batches": 120,
                    "batch_points": 11872,
                    "trips": 940,
                    "feed_reads": 288,
                    "throttled": 3,
                },
                {
                    "day": "2026-11-28",
                    "key": "Xk3v9QaL",
                    "key_name": "Booking engine (production)",
                    "partner": 4,
                    "lookups": 30411,
                    "batches": 98,
                    "batch_points": 9800,
                    "trips": 1022,
                    "feed_reads": 288,
                    "throttled": 0,
                },
            ],
            response_only=True,
        )
    ],
)
class UsageView(APIView):
    permission_classes = [permissions.AllowAny]  # a partner key or a staff token, checked below

    def get(self, request):
        today = timezone.now().date()
        since = _day(request.query_params, "since", today - timedelta(days=30))
        until = _day(request.query_params, "until", today)
        if since > until or (until - since).days >= MAX_USAGE_DAYS:
            raise ValidationError({"since": [f"From `since` to `until`: at most {MAX_USAGE_DAYS} days."]})
        rows = KeyUsage.objects.select_related("key").filter(day__gte=since, day__lte=until)
        if request.user.is_authenticated and request.user.is_staff and raw_key(request) is None:
            if partner := request.query_params.get("partner"):
                if not partner.isascii() or not partner.isdigit():
                    raise ValidationError({"partner": ["A partner id."]})
                rows = rows.filter(key__partner_id=int(partner))
            if key := request.query_params.get("key"):
                rows = rows.filter(key__prefix=key)
        else:
            partner = partner_for_request(request)
            if partner is None:
                raise NotAuthenticated(NEED_KEY_OR_STAFF)
            rows = rows.filter(key__partner=partner)
        usage.flush()  # what this process counted; the others write theirs every USAGE_FLUSH_SECONDS
        return Response(KeyUsageSerializer(rows.order_by("-day", "key__prefix"), many=True).data)
