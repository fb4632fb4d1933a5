from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers
from rest_framework.authtoken.serializers import AuthTokenSerializer

EMAIL_TAKEN = "An account with this email already exists."


class RegisterSerializer(serializers.ModelSerializer):
    email = serializers.EmailField()
    password = serializers.CharField(write_only=True, style={"input_type": "password"}, trim_whitespace=False)

    class Meta:
        model = get_user_model()
        fields = ["username", "email", "password"]

    def validate_email(self, value):
        local, _, domain = value.strip().rpartition("@")
        value = f"{local}@{domain.lower()}"
        if User.objects.filter(email__iexact=value).exists():
            raise serializers.ValidationError(EMAIL_TAKEN)
        return value

    def validate(self, attrs):
        candidate = User(username=attrs["username"], email=attrs["email"])
        try:
            password_validation.validate_password(attrs["password"], user=candidate)
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"password": exc.messages}) from exc
        return attrs


class TokenResponseSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Send as `Authorization: Token <token>`.")


class RegisterResponseSerializer(TokenResponseSerializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.EmailField()


__all__ = ["AuthTokenSerializer", "RegisterResponseSerializer", "RegisterSerializer", "TokenResponseSerializer"]
