from decimal import Decimal

from django.contrib.gis.db import models
from django.contrib.postgres.fields import ArrayField
from django.core.validators import MinValueValidator
from django.db.models import Func

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
    # Maintained by database triggers (migration 0002), whoever writes the row: +1 on every geometry change,
    # and +1 on every change to what a lookup result shows (name, price, provider, or the provider's name or
    # currency). The hexagon index keys its work on them.
    geometry_version = models.PositiveIntegerField(default=1, editable=False)
    payload_version = models.PositiveIntegerField(default=1, editable=False)
    # Positions of the geometry, computed by the database whoever writes it: vertex quotas and the geometry budget of
    # list pages add these up without reading any geometry.
    vertex_count = models.GeneratedField(
        expression=Func("geometry", function="ST_NPoints", output_field=models.IntegerField()),
        output_field=models.IntegerField(),
        db_persist=True,
    )

    class Meta:
        ordering = ["id"]
        constraints = [models.CheckConstraint(condition=models.Q(price__gte=0), name="service_area_price_not_negative")]

    def __str__(self):
        return self.name

    @property
    def etag(self) -> str:
        # Both versions move on every change of what the API shows (triggers), whoever writes the row.
        return f'"a{self.pk}.{self.geometry_version}.{self.payload_version}"'

    def save(self, *args, **kwargs):
        # An ordinary save must not write back versions it read earlier: the triggers own them.
        if not self._state.adding and kwargs.get("update_fields") is None and not kwargs.get("force_insert"):
            kwargs["update_fields"] = [
                field.name
                for field in self._meta.concrete_fields
                if not field.primary_key and not field.generated and field.name not in VERSION_FIELDS
            ]
        super().save(*args, **kwargs)
        self.refresh_from_db(fields=[*VERSION_FIELDS, "vertex_count"])


VERSION_FIELDS = ["geometry_version", "payload_version"]


class AreaChange(models.Model):
    """One change to what public lookups can show, for the change feed (/api/v1/changes/). Written by database
    triggers (migration 0005), whoever changes the data: areas of approved providers created, updated (which
    fields) or deleted, and all of a provider's areas when its approval is given or revoked."""

    class Kind(models.TextChoices):
        CREATED = "created"
        UPDATED = "updated"
        DELETED = "deleted"

    # The writing transaction's id: the feed lists a change only once every transaction that started before it
    # has ended, so a cursor never skips a change that commits late.
    xid = models.BigIntegerField()
    area_id = models.BigIntegerField()
    provider_id = models.BigIntegerField()
    kind = models.CharField(max_length=7, choices=Kind.choices)
    fields = ArrayField(models.CharField(max_length=20), default=list)
    changed_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["xid", "id"])]
