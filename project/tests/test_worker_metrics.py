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
        assert publish_queue_depth() == {"index": 3, "maintenance": 0}
    finally:
        app.conf.task_always_eager = eager
        broker.flushdb()
