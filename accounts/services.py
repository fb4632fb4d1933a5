from django.contrib.auth import get_user_model
from django.db import transaction
from rest_framework.authtoken.models import Token


@transaction.atomic
def user_register(*, username: str, email: str, password: str) -> tuple:
    """Create a user and their API token together: a failure leaves neither."""
    user = get_user_model().objects.create_user(username=username, email=email, password=password)
    token = Token.objects.create(user=user)
    return user, token
