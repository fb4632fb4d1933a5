from drf_spectacular.utils import OpenApiExample, extend_schema_serializer
from rest_framework import serializers

from providers.codes import CURRENCY_CHOICES, LANGUAGE_CHOICES
from providers.fields import CodeChoiceField, InternationalPhoneNumberField
from providers.models import Provider
from providers.permissions import can_see_private

PRIVATE_FIELDS = ("email", "phone_number")

EMAIL_TAKEN = "You have a provider with this email already."


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "Provider",
            value={
                "name": "Acme Shuttles",
                "email": "dispatch@acme-shuttles.example",
                "phone_number": "+12125550123",
                "language": "en",
                "currency": "USD",
            },
            request_only=True,
        ),
        OpenApiExample(
            "Provider",
            value={
                "id": 3,
                "owner": 1,
                "name": "Acme Shuttles",
                "email": "dispatch@acme-shuttles.example",
                "phone_number": "+12125550123",
                "language": "en",
                "currency": "USD",
                "approved": True,
                "approved_at": "2026-11-28T10:00:00Z",
                "pending_review": {},
                "review_requested_at": None,
                "created_at": "2026-11-28T09:00:00Z",
                "updated_at": "2026-11-28T09:00:00Z",
            },
            response_only=True,
        ),
    ]
)
class ProviderSerializer(serializers.ModelSerializer):
    phone_number = InternationalPhoneNumberField(help_text="International format; returned in E.164.")
    language = CodeChoiceField(choices=LANGUAGE_CHOICES, upper=False, help_text="ISO 639-1 code, e.g. `en`.")
    currency = CodeChoiceField(choices=CURRENCY_CHOICES, upper=True, help_text="ISO 4217 code, e.g. `USD`.")
    owner = serializers.PrimaryKeyRelatedField(read_only=True, help_text="The user who created the provider.")

    class Meta:
        model = Provider
        fields = [
            "id",
            "owner",
            "name",
            "email",
            "phone_number",
            "language",
            "currency",
            "approved",
            "approved_at",
            "pending_review",
            "review_requested_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "id",
            "owner",
            "approved",
            "approved_at",
            "pending_review",
            "review_requested_at",
            "created_at",
            "updated_at",
        ]
        extra_kwargs = {
            "approved": {"help_text": "Public lookups show only approved providers' areas; staff approve."},
            "pending_review": {
                "help_text": "Changes to an approved provider's name or currency (what public lookups show) wait "
                'here until staff accept them, e.g. {"name": "Acme Transfers"}; sending the current value withdraws '
                "one. Empty when nothing waits."
            },
            "review_requested_at": {"help_text": "When the oldest change waiting for review was proposed."},
            "email": {"help_text": "Shown only to the owner and staff."},
        }

    def to_representation(self, instance):
        data = super().to_representation(instance)
        request = self.context.get("request")
        if request is not None and not can_see_private(request.user, instance):
            # Other users see who a provider is, not how to reach it, nor what it proposed.
            for private in (*PRIVATE_FIELDS, "pending_review", "review_requested_at"):
                data.pop(private, None)
        return data

    def validate_name(self, value):
        value = value.strip()
        if not value:
            raise serializers.ValidationError("This field may not be blank.")
        return value

    def validate_email(self, value):
        local, _, domain = value.strip().rpartition("@")
        value = f"{local}@{domain.lower()}"
        request = self.context.get("request")
        owner = self.instance.owner if self.instance is not None else getattr(request, "user", None)
        others = Provider.objects.filter(email__iexact=value, owner=owner)
        if self.instance is not None:
            others = others.exclude(pk=self.instance.pk)
        if others.exists():
            raise serializers.ValidationError(EMAIL_TAKEN)
        return value
