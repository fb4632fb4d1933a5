"""Index v2: boundary rows carry masks of their children and grandchildren, and the index's state of an area
lives in hexindex_areaindex alone (it was also areas_servicearea.indexed_version)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("hexindex", "0003_live_payload_version"),
    ]

    operations = [
        migrations.AddField(
            model_name="areacell",
            name="inside",
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="areacell",
            name="crossing",
            field=models.BigIntegerField(default=0),
        ),
        migrations.RenameField(model_name="areaindex", old_name="version", new_name="indexed_version"),
        migrations.AlterField(
            model_name="areaindex",
            name="indexed_version",
            field=models.PositiveIntegerField(
                help_text="Geometry version of the area's rows in the cell table and of the figures below; 0 "
                "before the first build."
            ),
        ),
        # Whether an area's result is live is Redis's to say (the sweep compares its versions with these tables).
        migrations.RemoveField(model_name="areaindex", name="payload_version"),
        # Rows written by v1 have no masks: they must be rebuilt, so no area counts as indexed any more.
        migrations.RunSQL("DELETE FROM hexindex_areacell", reverse_sql=migrations.RunSQL.noop),
        migrations.RunSQL("UPDATE hexindex_areaindex SET indexed_version = 0", reverse_sql=migrations.RunSQL.noop),
    ]
