from django.conf import settings
from django.db import models
from django.db.models.functions import Lower
from phonenumber_field.modelfields import PhoneNumberField


class Provider(models.Model):
    """A shuttle, taxi or transfer company. Its currency prices all of its service areas."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="providers")
    name = models.CharField(max_length=200)
    email = models.EmailField(max_length=254)
    phone_number = PhoneNumberField()
    language = models.CharField(max_length=2, help_text="ISO 639-1 code, e.g. `en`.")
    currency = models.CharField(max_length=3, help_text="ISO 4217 code, e.g. `USD`.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(Lower("email"), name="provider_email_unique_ci"),
        ]
        indexes = [
            models.Index(fields=["owner"]),
            models.Index(fields=["language"]),
            models.Index(fields=["currency"]),
        ]

    def __str__(self):
        return self.name
