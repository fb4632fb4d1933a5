from django.contrib.gis.db import models


class IndexStatus(models.TextChoices):
    PENDING = "pending"
    READY = "ready"
    FAILED = "failed"


class AreaCell(models.Model):
    """The index's source of truth: which H3 cells an area's current cover holds. Redis mirrors it.

    Interior cells (any resolution) are entirely inside the area. Boundary cells (all at the area's resolution)
    need an exact check; `clip` is the area cut to the cell, kept for areas with many vertices so that the check
    costs about the same for a 10-vertex and a 10,000-vertex area.
    """

    pk = models.CompositePrimaryKey("cell", "area")
    cell = models.BigIntegerField()
    # No database-level foreign key: bulk index writes would pay a deferred check per row at commit. Rows go
    # with their area through Django's cascade, and lookups only ever reach them through a live area.
    area = models.ForeignKey("areas.ServiceArea", on_delete=models.CASCADE, related_name="+", db_constraint=False)
    boundary = models.BooleanField()
    clip = models.MultiPolygonField(srid=4326, null=True, spatial_index=False)

    class Meta:
        # Rows are read by (cell, area) in lookups and written and deleted per area by the indexer.
        indexes = [models.Index(fields=["area"], name="hexindex_areacell_area")]

    def __str__(self):
        return f"{self.cell:x} -> area {self.area_id}"


class AreaIndex(models.Model):
    """Bookkeeping for an area's index: what the last build produced, and why the last one failed.

    Whether an area is indexed is decided by the area row itself (indexed_version == geometry_version); this
    table only describes builds.
    """

    area = models.OneToOneField(
        "areas.ServiceArea", on_delete=models.CASCADE, primary_key=True, related_name="index_state"
    )
    version = models.PositiveIntegerField(
        help_text="Geometry version of the area's rows in the cell table and of the figures below; 0 before the "
        "first build."
    )
    resolution = models.PositiveSmallIntegerField(null=True)
    interior_cells = models.PositiveIntegerField(default=0)
    boundary_cells = models.PositiveIntegerField(default=0)
    build_seconds = models.FloatField(null=True)
    indexed_at = models.DateTimeField(null=True)
    payload_version = models.PositiveIntegerField(
        null=True, help_text="The area's payload version when it was last made live in Redis."
    )
    enqueued_at = models.DateTimeField(null=True)
    failed_version = models.PositiveIntegerField(null=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name_plural = "area indexes"

    def __str__(self):
        return f"index of area {self.area_id}"
