"""The worker reports queue depths (the worker service autoscales on them in AWS)."""

import redis
from django.conf import settings

from worker.celery import app, publish_queue_depth


def test_queue_depth_counts_waiting_messages():
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.flushdb()
    eager, app.conf.task_always_eager = app.conf.task_always_eager, False
    try:
        for _ in range(3):
            app.send_task("hexindex.refresh_areas", args=[[1]], queue="index")  # published, never consumed here
        figures = publish_queue_depth()
        assert (figures["index"], figures["maintenance"]) == (3, 0)
    finally:
        app.conf.task_always_eager = eager
        broker.flushdb()


def test_the_index_backlog_goes_to_cloudwatch_for_the_alarms(db, make_area, settings, monkeypatch):
    sent = {}

    class CloudWatch:
        def put_metric_data(self, **kwargs):
            sent.update(kwargs)

    import boto3

    monkeypatch.setattr(boto3, "client", lambda name: CloudWatch())
    settings.CLOUDWATCH_METRICS_NAMESPACE = "stack/Celery"
    from testing.geo import square

    make_area(square(1.0, 2.0, 0.1))  # pending until built
    figures = publish_queue_depth()
    assert figures["pending_areas"] == 1 and figures["oldest_pending_seconds"] >= 0
    names = {metric["MetricName"] for metric in sent["MetricData"]}
    assert {"QueueDepth", "PendingAreas", "OldestPendingSeconds"} <= names
    assert sent["Namespace"] == "stack/Celery"
