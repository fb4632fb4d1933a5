"""GET /api/v1/: every endpoint, public ones first, for anyone (no token needed to find your way)."""

from drf_spectacular.utils import extend_schema
from rest_framework.decorators import api_view, permission_classes, throttle_classes
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.reverse import reverse

# (name in the answer, URL name, who may call it)
ENDPOINTS = [
    ("lookup", "lookup", "public (a partner key raises the limit)"),
    ("lookup-batch", "lookup-batch", "public (a partner key raises the limit)"),
    ("lookup-trip", "lookup-trip", "public (a partner key raises the limit)"),
    ("changes", "changes", "public (a partner key raises the limit)"),
    ("register", "auth-register", "public"),
    ("token", "auth-token", "public: your username and password"),
    ("tokens", "api-token-list", "token"),
    ("providers", "provider-list", "token"),
    ("service-areas", "service-area-list", "token"),
    ("usage", "usage", "partner key, or staff token"),
    ("webhooks", "webhook-list", "partner key, or staff token"),
    ("partners", "partner-list", "staff token"),
    ("partner-keys", "partner-key-list", "staff token"),
    ("schema", "schema", "public"),
    ("docs", "swagger-ui", "public"),
]


@extend_schema(exclude=True)
@api_view(["GET"])
@permission_classes([AllowAny])
@throttle_classes([])
def api_root(request, format=None):
    return Response(
        {
            name: {"url": reverse(url_name, request=request, format=format), "access": access}
            for name, url_name, access in ENDPOINTS
        }
    )
