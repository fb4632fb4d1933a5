from django.conf import settings
from django.contrib.auth import authenticate, get_user_model, password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from accounts.models import ApiToken

INVALID_CREDENTIALS = "Unable to log in with the username and password given."


def _expires_in_days_field():
    return serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=settings.API_TOKEN_MAX_TTL_DAYS,
        help_text=f"Days until the token expires (default {settings.API_TOKEN_TTL_DAYS}, "
        f"at most {settings.API_TOKEN_MAX_TTL_DAYS}).",
    )


class RegisterSerializer(serializers.ModelSerializer):
    email = serializers.EmailField()
    password = serializers.CharField(write_only=True, style={"input_type": "password"}, trim_whitespace=False)

    class Meta:
        model = get_user_model()
        fields = ["username", "email", "password"]

    def validate_email(self, value):
        # Not required to be unique: a registration must not tell whether someone else uses an address.
        local, _, domain = value.strip().rpartition("@")
        return f"{local}@{domain.lower()}"

    def validate(self, attrs):
        candidate = get_user_model()(username=attrs["username"], email=attrs["email"])
        try:
            password_validation.validate_password(attrs["password"], user=candidate)
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"password": exc.messages}) from exc
        return attrs


class LoginSerializer(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField(style={"input_type": "password"}, trim_whitespace=False, write_only=True)
    name = serializers.CharField(required=False, max_length=100, default="", help_text="What the token is for.")
    expires_in_days = _expires_in_days_field()

    def validate(self, attrs):
        user = authenticate(request=self.context.get("request"), username=attrs["username"], password=attrs["password"])
        if user is None:
            raise serializers.ValidationError(INVALID_CREDENTIALS, code="authorization")
        attrs["user"] = user
        return attrs


class ApiTokenSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="token_key", read_only=True, help_text="The token's first characters.")

    class Meta:
        model = ApiToken
        fields = ["id", "name", "created", "expiry"]
        read_only_fields = fields


class NewTokenSerializer(ApiTokenSerializer):
    token = serializers.CharField(help_text="Send as `Authorization: Token <token>`. Shown this once only.")

    class Meta(ApiTokenSerializer.Meta):
        fields = ["id", "name", "created", "expiry", "token"]
        read_only_fields = fields


class RegisterResponseSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.EmailField()
    token = serializers.CharField(help_text="Send as `Authorization: Token <token>`. Shown this once only.")
    expiry = serializers.DateTimeField()
