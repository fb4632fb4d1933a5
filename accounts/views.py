from datetime import timedelta

from django.conf import settings
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import ApiToken
from accounts.security import AuthRateThrottle
from accounts.serializers import (
    ApiTokenSerializer,
    LoginSerializer,
    NewTokenSerializer,
    RegisterResponseSerializer,
    RegisterSerializer,
)
from accounts.services import token_create, token_revoke, user_register

EXAMPLE_TOKEN = "5f0e8a6b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f"


def _expires_in(validated: dict) -> timedelta:
    return timedelta(days=validated.get("expires_in_days") or settings.API_TOKEN_TTL_DAYS)


class RegisterView(APIView):
    authentication_classes = []
    permission_classes = [permissions.AllowAny]
    throttle_classes = [AuthRateThrottle]
    throttle_scope = "auth"

    @extend_schema(
        summary="Create an account",
        description="Returns the account's first API token (it expires; get more at `/auth/token/`).",
        request=RegisterSerializer,
        responses={201: RegisterResponseSerializer},
        auth=[],
        examples=[
            OpenApiExample(
                "Register",
                value={"username": "acme", "email": "ops@acme.example", "password": "a long passphrase"},
                request_only=True,
            ),
            OpenApiExample(
                "Registered",
                value={
                    "id": 1,
                    "username": "acme",
                    "email": "ops@acme.example",
                    "token": EXAMPLE_TOKEN,
                    "expiry": "2027-02-26T09:00:00Z",
                },
                response_only=True,
                status_codes=["201"],
            ),
        ],
    )
    def post(self, request):
        serializer = RegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user, token, secret = user_register(
            **serializer.validated_data, expires_in=timedelta(days=settings.API_TOKEN_TTL_DAYS)
        )
        body = {"id": user.id, "username": user.username, "email": user.email, "token": secret, "expiry": token.expiry}
        return Response(RegisterResponseSerializer(body).data, status=status.HTTP_201_CREATED)


class TokenView(APIView):
    authentication_classes = []
    permission_classes = [permissions.AllowAny]
    throttle_classes = [AuthRateThrottle]
    throttle_scope = "auth"

    @extend_schema(
        summary="Get a new API token for a username and password",
        description="Each call creates another token (e.g. one per integration); list and revoke them at "
        "`/auth/tokens/`. After failed attempts from one address for one username, that address waits before its "
        "next attempt, longer each time (429 with `Retry-After`); other addresses are not delayed by them. 503 "
        "when the attempt limits cannot be checked (Redis).",
        request=LoginSerializer,
        responses={201: NewTokenSerializer},
        auth=[],
        examples=[
            OpenApiExample(
                "Credentials",
                value={"username": "acme", "password": "a long passphrase", "name": "booking-site"},
                request_only=True,
            ),
            OpenApiExample(
                "Token",
                value={
                    "id": EXAMPLE_TOKEN[:15],
                    "name": "booking-site",
                    "created": "2026-11-28T09:00:00Z",
                    "expiry": "2027-02-26T09:00:00Z",
                    "token": EXAMPLE_TOKEN,
                },
                response_only=True,
                status_codes=["201"],
            ),
        ],
    )
    def post(self, request):
        serializer = LoginSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        token, secret = token_create(user=data["user"], name=data["name"], expires_in=_expires_in(data))
        token.token = secret
        return Response(NewTokenSerializer(token).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    list=extend_schema(summary="Your API tokens", description="Without their secrets: `id` is the first characters."),
    destroy=extend_schema(summary="Revoke one of your API tokens", description="It stops working at once."),
)
class ApiTokenViewSet(mixins.ListModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    serializer_class = ApiTokenSerializer
    lookup_field = "token_key"
    lookup_url_kwarg = "id"
    pagination_class = None

    queryset = ApiToken.objects.none()  # for the schema; requests see their own tokens only

    def get_queryset(self):
        return ApiToken.objects.filter(user=self.request.user)

    def perform_destroy(self, instance):
        token_revoke(token=instance)
