from django.contrib.gis.db import models
from django.db.models import Exists, OuterRef


class IndexStatus(models.TextChoices):
    PENDING = "pending"
    READY = "ready"
    FAILED = "failed"


class AreaCell(models.Model):
    """The index's source of truth: which H3 cells an area's current cover holds. Redis mirrors it.

    Interior cells (any resolution) are entirely inside the area. Boundary cells (all at the area's resolution)
    carry two masks classifying their children and grandchildren (see hexindex.cover), and for areas with many
    vertices `clip`, the area cut to where the masks leave exact checks, so that a check costs about the same for
    a 10-vertex and a 10,000-vertex area.
    """

    pk = models.CompositePrimaryKey("cell", "area")
    cell = models.BigIntegerField()
    # No database-level foreign key: bulk index writes would pay a deferred check per row at commit. Rows go
    # with their area through Django's cascade, and lookups only ever reach them through a live area.
    area = models.ForeignKey("areas.ServiceArea", on_delete=models.CASCADE, related_name="+", db_constraint=False)
    boundary = models.BooleanField()
    # Unsigned 64-bit masks stored as signed bigints (two's complement).
    inside = models.BigIntegerField(default=0)
    crossing = models.BigIntegerField(default=0)
    clip = models.MultiPolygonField(srid=4326, null=True, spatial_index=False)

    class Meta:
        # Rows are read by (cell, area) in lookups and written and deleted per area by the indexer.
        indexes = [models.Index(fields=["area"], name="hexindex_areacell_area")]

    def __str__(self):
        return f"{self.cell:x} -> area {self.area_id}"


class AreaIndex(models.Model):
    """The index's state of an area in PostgreSQL: which geometry version its cell rows hold, what the last build
    produced, and why the last one failed. An area is indexed when `indexed_version` equals its geometry_version;
    until then lookups check it directly in PostGIS."""

    area = models.OneToOneField(
        "areas.ServiceArea", on_delete=models.CASCADE, primary_key=True, related_name="index_state"
    )
    indexed_version = models.PositiveIntegerField(
        help_text="Geometry version of the area's rows in the cell table and of the figures below; 0 before the "
        "first build."
    )
    resolution = models.PositiveSmallIntegerField(null=True)
    interior_cells = models.PositiveIntegerField(default=0)
    boundary_cells = models.PositiveIntegerField(default=0)
    build_seconds = models.FloatField(null=True)
    indexed_at = models.DateTimeField(null=True)
    enqueued_at = models.DateTimeField(null=True)
    failed_version = models.PositiveIntegerField(null=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name_plural = "area indexes"

    def __str__(self):
        return f"index of area {self.area_id}"


def indexed():
    """Condition on ServiceArea: its current geometry is in the cell table."""
    return Exists(AreaIndex.objects.filter(area_id=OuterRef("pk"), indexed_version=OuterRef("geometry_version")))


# The same condition in SQL, for an areas_servicearea row aliased `a`.
INDEXED_SQL = (
    "EXISTS (SELECT 1 FROM hexindex_areaindex s WHERE s.area_id = a.id AND s.indexed_version = a.geometry_version)"
)


class PendingMark(models.Model):
    """A pending registration Redis could not take when it was made (a provider revoked while Redis was down or
    full): kept here, in the revoking transaction, and replayed into Redis (invalidation.replay_deferred) before
    lookups trust Redis again. Not a foreign key: the area may be deleted meanwhile, and registering a deleted
    area is harmless (lookups check it in PostGIS, where it is gone)."""

    area_id = models.BigIntegerField()
    cells = models.BinaryField(null=True, help_text="Packed 8-byte cells; null: everywhere.")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"deferred registration of area {self.area_id}"
