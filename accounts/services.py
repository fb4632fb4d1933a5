from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import ApiToken
from core.errors import ApplicationError


class TooManyTokens(ApplicationError):
    code = "too_many_tokens"


def token_create(*, user, name: str = "", expires_in: timedelta | None) -> tuple[ApiToken, str]:
    """A new API token for the user: the stored record and the secret (shown once, stored only as a digest)."""
    live = ApiToken.objects.filter(Q(expiry__isnull=True) | Q(expiry__gt=timezone.now()), user=user)
    if live.count() >= settings.API_TOKENS_PER_USER:
        limit = settings.API_TOKENS_PER_USER
        raise TooManyTokens(f"You hold {limit} API tokens already: revoke one at /api/v1/auth/tokens/.")
    return ApiToken.objects.create(user=user, expiry=expires_in, name=name)


def token_revoke(*, token: ApiToken) -> None:
    token.delete()


@transaction.atomic
def user_register(*, username: str, email: str, password: str, expires_in: timedelta | None) -> tuple:
    """Create a user and their first API token together: a failure leaves neither."""
    user = get_user_model().objects.create_user(username=username, email=email, password=password)
    token, secret = token_create(user=user, name="registration", expires_in=expires_in)
    return user, token, secret
