from django.db import models
from knox.models import AbstractAuthToken


class ApiToken(AbstractAuthToken):
    """An API token (django-rest-knox): stored as a SHA-512 digest, with an expiry; a user holds any number, e.g.
    one per integration, each revoked on its own. `token_key` (its first characters) names it in listings."""

    name = models.CharField(max_length=100, blank=True, help_text="What the token is for, e.g. `booking-site`.")

    class Meta:
        ordering = ["created"]
