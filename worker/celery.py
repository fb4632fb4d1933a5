"""The Celery app: broker, queues and schedule. Domain tasks live in each app's `tasks.py`."""

import os
import warnings

from celery import Celery
from celery.exceptions import CPendingDeprecationWarning
from celery.signals import celeryd_after_setup

from worker.broker import keep_worker_alive_on_connection_loss
from worker.queues import QUEUES

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings.local")

keep_worker_alive_on_connection_loss()

app = Celery("servicearea", task_cls="core.tasks:DeliveryCountingTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


# Queues and what each carries: worker/queues.py.
app.conf.task_routes = {
    "hexindex.index_area": {"queue": "index"},
    "hexindex.refresh_areas": {"queue": "index"},
    "hexindex.rebuild_redis": {"queue": "maintenance"},
    "hexindex.sweep": {"queue": "maintenance"},
    "hexindex.replay_deferred": {"queue": "index"},
    "worker.publish_queue_depth": {"queue": "maintenance"},
    "webhooks.dispatch": {"queue": "webhooks"},
    "webhooks.deliver": {"queue": "webhooks"},
    "webhooks.ping": {"queue": "webhooks"},
    "webhooks.prune_deliveries": {"queue": "webhooks"},
}


@celeryd_after_setup.connect
def _no_warning_on_each_reconnection(**kwargs):
    # Celery warns on every reconnection that from 6.0 on it will cancel the tasks running when the connection was
    # lost; the settings keep them running on purpose (CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS
    # says why). Installed once Celery's logging setup has turned its deprecation warnings on.
    warnings.filterwarnings(
        "ignore", r"\s*In Celery 5\.1 we introduced an optional breaking change", CPendingDeprecationWarning
    )


@app.on_after_configure.connect
def _schedule(sender, **kwargs):
    # Once Django's settings are loaded (reading them while this module is imported would be too early: importing
    # the settings package imports it).
    from django.conf import settings

    def every(seconds: float, task: str, *, expires: bool = False) -> dict:
        # The period travels with each message: however many beats run, one copy runs per period (core.tasks).
        options: dict = {"headers": {"beat_period": seconds}}
        if expires:  # not started before the next one is due: dropped, so a stopped worker finds no pile of them
            options["expires"] = seconds
        return {"task": task, "schedule": seconds, "options": options}

    sender.conf.beat_schedule = {
        "sweep-index": every(settings.HEXINDEX_SWEEP_SECONDS, "hexindex.sweep"),
        # Revocations made while Redis was away reach it within seconds of its return (hexindex.invalidation).
        "replay-deferred-registrations": every(
            settings.HEXINDEX_REPLAY_SECONDS, "hexindex.replay_deferred", expires=True
        ),
        "publish-queue-depth": every(60.0, "worker.publish_queue_depth"),
        "webhooks-dispatch": every(settings.WEBHOOKS_POLL_SECONDS, "webhooks.dispatch", expires=True),
        "webhooks-prune-deliveries": every(3600.0, "webhooks.prune_deliveries"),
    }


@app.task(name="worker.publish_queue_depth", ignore_result=True, soft_time_limit=20, time_limit=30)
def publish_queue_depth() -> dict:
    """Messages waiting per queue, and the areas pending in the index with the age of the oldest, sent to
    CloudWatch when CLOUDWATCH_METRICS_NAMESPACE is set: the worker service scales on the queue depth, and alarms
    watch both (ops/aws)."""
    from django.conf import settings

    from hexindex import api as index

    with app.connection_for_read() as connection:
        client = connection.default_channel.client
        depths = {queue: int(client.llen(queue)) for queue in QUEUES}
    figures: dict = dict(depths)
    metric_data = [
        {"MetricName": "QueueDepth", "Dimensions": [{"Name": "Queue", "Value": queue}], "Value": depth}
        for queue, depth in depths.items()
    ]
    pending = index.pending_stats()
    if pending is not None:
        figures["pending_areas"], figures["oldest_pending_seconds"] = pending[0], round(pending[1], 1)
        metric_data += [
            {"MetricName": "PendingAreas", "Value": pending[0], "Unit": "Count"},
            {"MetricName": "OldestPendingSeconds", "Value": pending[1], "Unit": "Seconds"},
        ]
    if settings.CLOUDWATCH_METRICS_NAMESPACE:
        import boto3

        boto3.client("cloudwatch").put_metric_data(
            Namespace=settings.CLOUDWATCH_METRICS_NAMESPACE, MetricData=metric_data
        )
    return figures
