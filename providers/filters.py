import django_filters

from providers.codes import CURRENCY_CHOICES, LANGUAGE_CHOICES
from providers.models import Provider


class ProviderFilter(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains", help_text="Case-insensitive substring of the name.")
    language = django_filters.ChoiceFilter(choices=LANGUAGE_CHOICES)
    currency = django_filters.ChoiceFilter(choices=CURRENCY_CHOICES)
    owner = django_filters.NumberFilter(field_name="owner_id")
    approved = django_filters.BooleanFilter(help_text="Only approved (true) or unapproved (false) providers.")
    review_pending = django_filters.BooleanFilter(
        field_name="review_requested_at",
        lookup_expr="isnull",
        exclude=True,
        help_text="Only providers with changes waiting for staff review (true), or without (false).",
    )

    class Meta:
        model = Provider
        fields = ["name", "language", "currency", "owner", "approved", "review_pending"]
