from drf_spectacular.utils import OpenApiExample, extend_schema_serializer
from rest_framework import serializers

from providers.codes import CURRENCY_CHOICES, LANGUAGE_CHOICES
from providers.fields import CodeChoiceField, InternationalPhoneNumberField
from providers.models import Provider

EMAIL_TAKEN = "A provider with this email already exists."


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
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "owner", "created_at", "updated_at"]

    def validate_name(self, value):
        value = value.strip()
        if not value:
            raise serializers.ValidationError("This field may not be blank.")
        return value

    def validate_email(self, value):
        local, _, domain = value.strip().rpartition("@")
        value = f"{local}@{domain.lower()}"
        others = Provider.objects.filter(email__iexact=value)
        if self.instance is not None:
            others = others.exclude(pk=self.instance.pk)
        if others.exists():
            raise serializers.ValidationError(EMAIL_TAKEN)
        return value
