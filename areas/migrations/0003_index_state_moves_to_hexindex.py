"""The index's state of an area lives in hexindex_areaindex alone: drop areas_servicearea.indexed_version and
the partial index over unindexed areas (pending areas are found through Redis now)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("areas", "0002_index_versions"),
        ("hexindex", "0004_index_v2"),
    ]

    operations = [
        migrations.RunSQL(
            "DROP INDEX IF EXISTS areas_servicearea_unindexed_geometry",
            reverse_sql=migrations.RunSQL.noop,
        ),
        migrations.RemoveField(model_name="servicearea", name="indexed_version"),
    ]
