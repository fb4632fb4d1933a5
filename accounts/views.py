from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import permissions, status
from rest_framework.authtoken.models import Token
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from accounts.serializers import (
    AuthTokenSerializer,
    RegisterResponseSerializer,
    RegisterSerializer,
    TokenResponseSerializer,
)
from accounts.services import user_register


class RegisterView(APIView):
    authentication_classes = []
    permission_classes = [permissions.AllowAny]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "auth"

    @extend_schema(
        summary="Create an account",
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
                value={"id": 1, "username": "acme", "email": "ops@acme.example", "token": "9944b09199c62bcf9418ad8"},
                response_only=True,
                status_codes=["201"],
            ),
        ],
    )
    def post(self, request):
        serializer = RegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user, token = user_register(**serializer.validated_data)
        body = {"id": user.id, "username": user.username, "email": user.email, "token": token.key}
        return Response(body, status=status.HTTP_201_CREATED)


class TokenView(APIView):
    authentication_classes = []
    permission_classes = [permissions.AllowAny]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "auth"

    @extend_schema(
        summary="Get the API token for a username and password",
        request=AuthTokenSerializer,
        responses={200: TokenResponseSerializer},
        auth=[],
        examples=[
            OpenApiExample(
                "Credentials", value={"username": "acme", "password": "a long passphrase"}, request_only=True
            ),
            OpenApiExample("Token", value={"token": "9944b09199c62bcf9418ad8"}, response_only=True),
        ],
    )
    def post(self, request):
        serializer = AuthTokenSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        token, _ = Token.objects.get_or_create(user=serializer.validated_data["user"])
        return Response({"token": token.key})
