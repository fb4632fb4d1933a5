"""The Celery app: broker, queues and schedule. Domain tasks live in each app's `tasks.py`."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings.local")

app = Celery("servicearea")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

QUEUES = ("index", "maintenance")

# Queues: `index` carries per-area builds (many, short); `maintenance` carries Redis rebuilds and the sweep, so
# a long rebuild never waits behind a burst of edits, nor the other way round.
app.conf.task_routes = {
    "hexindex.index_area": {"queue": "index"},
    "hexindex.refresh_areas": {"queue": "index"},
    "hexindex.rebuild_redis": {"queue": "maintenance"},
    "hexindex.sweep": {"queue": "maintenance"},
    "worker.publish_queue_depth": {"queue": "maintenance"},
}
app.conf.beat_schedule = {
    "sweep-index": {"task": "hexindex.sweep", "schedule": 60.0},
    "publish-queue-depth": {"task": "worker.publish_queue_depth", "schedule": 60.0},
}


@app.task(name="worker.publish_queue_depth", ignore_result=True, time_limit=30)
def publish_queue_depth() -> dict:
    """Messages waiting per queue, sent to CloudWatch when CLOUDWATCH_METRICS_NAMESPACE is set: the worker
    service scales on it (ops/aws)."""
    from django.conf import settings

    with app.connection_for_read() as connection:
        client = connection.default_channel.client
        depths = {queue: int(client.llen(queue)) for queue in QUEUES}
    if settings.CLOUDWATCH_METRICS_NAMESPACE:
        import boto3

        boto3.client("cloudwatch").put_metric_data(
            Namespace=settings.CLOUDWATCH_METRICS_NAMESPACE,
            MetricData=[
                {"MetricName": "QueueDepth", "Dimensions": [{"Name": "Queue", "Value": queue}], "Value": depth}
                for queue, depth in depths.items()
            ],
        )
    return depths
