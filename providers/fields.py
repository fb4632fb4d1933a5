"""Serializer fields for the provider's contact and locale data, with messages that tell the user how to fix
their input."""

import phonenumbers
from phonenumber_field.phonenumber import PhoneNumber
from phonenumber_field.serializerfields import PhoneNumberField
from rest_framework import serializers

PHONE_NOT_INTERNATIONAL = "Enter the number in international format with its country code, e.g. +12125550123."
PHONE_INVALID = "This is not a valid phone number for its country."


class InternationalPhoneNumberField(PhoneNumberField):
    """Accepts only numbers that carry their country code, returns E.164.

    A national number such as (212) 555-0123 is ambiguous without a country, and providers operate across
    borders, so there is no default region to guess with.
    """

    def to_internal_value(self, data):
        text = serializers.CharField.to_internal_value(self, data).strip()
        try:
            number = phonenumbers.parse(text, None)
        except phonenumbers.NumberParseException as exc:
            if exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE:
                raise serializers.ValidationError(PHONE_NOT_INTERNATIONAL) from exc
            raise serializers.ValidationError(PHONE_INVALID) from exc
        if not phonenumbers.is_valid_number(number):
            raise serializers.ValidationError(PHONE_INVALID)
        return PhoneNumber.from_string(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


class CodeChoiceField(serializers.ChoiceField):
    """A ChoiceField for ISO codes that forgives letter case (`usd` means `USD`)."""

    def __init__(self, *, upper: bool, **kwargs):
        self.upper = upper
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, str):
            data = data.strip().upper() if self.upper else data.strip().lower()
        return super().to_internal_value(data)
