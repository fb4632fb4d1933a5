import django_filters
from django import forms

from providers.codes import CURRENCY_CHOICES, LANGUAGE_CHOICES
from providers.models import Provider

NOT_A_BOOLEAN = "Must be true or false."


class StrictBooleanField(forms.Field):
    """true/false (or 1/0), any letter case; anything else is an error, not "no filter" as django-filter's own
    boolean filter makes it (`approved=maybe` listed every provider)."""

    def to_python(self, value):
        if value in (None, ""):
            return None
        lowered = str(value).lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise forms.ValidationError(NOT_A_BOOLEAN, code="invalid")


class StrictBooleanFilter(django_filters.Filter):
    field_class = StrictBooleanField


class CodeField(forms.ChoiceField):
    """An ISO code in any letter case (`gbp` is GBP), checked against the list."""

    def __init__(self, *args, upper: bool, **kwargs):
        self.upper = upper
        super().__init__(*args, **kwargs)

    def to_python(self, value):
        value = super().to_python(value)
        return value.upper() if self.upper else value.lower()


class CodeFilter(django_filters.ChoiceFilter):
    field_class = CodeField


class ProviderFilter(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains", help_text="Case-insensitive substring of the name.")
    language = CodeFilter(choices=LANGUAGE_CHOICES, upper=False, help_text="ISO 639-1 code, any letter case.")
    currency = CodeFilter(choices=CURRENCY_CHOICES, upper=True, help_text="ISO 4217 code, any letter case.")
    owner = django_filters.NumberFilter(field_name="owner_id")
    approved = StrictBooleanFilter(help_text="Only approved (true) or unapproved (false) providers.")
    review_pending = StrictBooleanFilter(
        field_name="review_requested_at",
        lookup_expr="isnull",
        exclude=True,
        help_text="Only providers with changes waiting for staff review (true), or without (false).",
    )

    class Meta:
        model = Provider
        fields = ["name", "language", "currency", "owner", "approved", "review_pending"]
