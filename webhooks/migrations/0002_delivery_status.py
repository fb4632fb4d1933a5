from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("webhooks", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="webhookdelivery",
            name="status",
            field=models.CharField(
                choices=[("queued", "Queued"), ("sending", "Sending"), ("succeeded", "Succeeded"), ("failed", "Failed")],
                default="failed",
                max_length=9,
            ),
            preserve_default=False,
        ),
        # Every attempt logged so far was sent: its status follows from `ok`.
        migrations.RunSQL(
            "UPDATE webhooks_webhookdelivery SET status = 'succeeded' WHERE ok", reverse_sql=migrations.RunSQL.noop
        ),
        migrations.AlterField(
            model_name="webhookdelivery",
            name="duration_ms",
            field=models.PositiveIntegerField(blank=True, help_text="None until it was sent.", null=True),
        ),
        migrations.AlterField(
            model_name="webhookdelivery",
            name="started_at",
            field=models.DateTimeField(help_text="When it was sent (a ping not sent yet: when it was asked for)."),
        ),
    ]
