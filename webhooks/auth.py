"""Who manages webhooks: a partner with its API key (its own webhooks), or staff with a token (all of them)."""

from django.contrib.auth.models import AnonymousUser
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import permissions
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed

from partners.keys import INVALID_KEY, partner_for_request, raw_key
from partners.models import Partner

NEED_KEY_OR_STAFF = "Send your partner API key (X-API-Key), or a staff token."


class PartnerKeyAuthentication(BaseAuthentication):
    """`X-API-Key: <prefix>.<secret>`: request.auth is then the key's Partner (request.user stays anonymous)."""

    def authenticate(self, request):
        if raw_key(request) is None:
            return None  # no key: the next authentication (a staff token) may apply
        partner = partner_for_request(request)
        if partner is None:
            raise AuthenticationFailed(INVALID_KEY)
        return AnonymousUser(), partner

    def authenticate_header(self, request):
        return "Api-Key"  # makes a missing key a 401, not a 403


class IsPartnerOrStaff(permissions.BasePermission):
    message = NEED_KEY_OR_STAFF

    def has_permission(self, request, view):
        return isinstance(request.auth, Partner) or bool(request.user and request.user.is_staff)


def partner_of(request) -> Partner | None:
    """The partner calling, or None for staff."""
    return request.auth if isinstance(request.auth, Partner) else None


class PartnerKeyScheme(OpenApiAuthenticationExtension):
    target_class = PartnerKeyAuthentication
    name = "ApiKeyAuth"  # declared in SPECTACULAR_SETTINGS["APPEND_COMPONENTS"]

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "X-API-Key"}
