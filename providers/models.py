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
    # Public lookups show only approved providers' areas: anyone may register, so staff vouch for a provider
    # before travellers see its prices. Owners still see, edit and test their own areas meanwhile.
    approved = models.BooleanField(default=False)
    approved_at = models.DateTimeField(null=True, blank=True)
    # What public lookups show of an approved provider (its name and currency) changes only once staff accept it:
    # the owner's proposals wait here, e.g. {"name": "Acme Transfers"}. Empty: nothing waits.
    pending_review = models.JSONField(default=dict, blank=True)
    review_requested_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            # Per owner: a global check would tell anyone whether some other provider uses an address.
            models.UniqueConstraint("owner", Lower("email"), name="provider_owner_email_unique_ci"),
        ]
        indexes = [
            models.Index(fields=["owner"]),
            models.Index(fields=["language"]),
            models.Index(fields=["currency"]),
            models.Index(fields=["approved"]),
            models.Index(fields=["review_requested_at"], name="provider_review_requested"),
        ]

    def __str__(self):
        return self.name

    @property
    def etag(self) -> str:
        return f'"p{self.pk}.{int(self.updated_at.timestamp() * 1_000_000)}"'
