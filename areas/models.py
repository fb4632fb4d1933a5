from decimal import Decimal

from django.contrib.gis.db import models
from django.core.validators import MinValueValidator

PRICE_MAX_DIGITS = 12  # up to 9,999,999,999.99 in the provider's currency
PRICE_DECIMAL_PLACES = 2


class ServiceArea(models.Model):
    """A polygon a provider serves, with the price of a ride in it."""

    provider = models.ForeignKey("providers.Provider", on_delete=models.CASCADE, related_name="service_areas")
    name = models.CharField(max_length=200)
    price = models.DecimalField(
        max_digits=PRICE_MAX_DIGITS, decimal_places=PRICE_DECIMAL_PLACES, validators=[MinValueValidator(Decimal(0))]
    )
    geometry = models.MultiPolygonField(srid=4326)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.CheckConstraint(condition=models.Q(price__gte=0), name="service_area_price_not_negative")]

    def __str__(self):
        return self.name
