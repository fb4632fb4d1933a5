"""End to end with a real Celery worker and broker: a failing receiver makes the task retry (Retry, as Flower shows
it) after the backoff, then the batch is delivered, signed, and the cursor moves."""

import os
import subprocess
import sys
import time

import pytest
import redis
from django.conf import settings
from django.db import connection

from areas.changes import format_cursor
from webhooks import tasks
from webhooks.models import Webhook, WebhookDelivery
from webhooks.tests.helpers import Receiver, feed_cursors, signature_valid
from worker.celery import app as celery_app

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker(tmp_path):
    """A worker on the test broker and database, retrying after 1 s, 2 s, ...; tasks published to it."""
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings.test",
        "TEST_DATABASE_NAME": connection.settings_dict["NAME"],
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "WEBHOOKS_RETRY_BASE_SECONDS": "1",
    }
    log = tmp_path / "worker.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "worker", "worker", "--pool", "solo", "-Q", "maintenance",
         "--without-heartbeat", "--without-gossip", "--without-mingle", "--loglevel", "INFO"],
        cwd=settings.BASE_DIR, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        deadline = time.monotonic() + 60
        while "ready." not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield log
    finally:
        celery_app.conf.task_always_eager = eager
        process.terminate()
        process.wait(timeout=30)


def test_a_real_worker_retries_with_backoff_then_delivers(worker, make_webhook, change_areas):
    with Receiver([503]) as receiver:
        webhook = make_webhook(receiver.url)
        start = webhook.cursor
        areas = change_areas(2)
        expected = feed_cursors(start)
        tasks.dispatch.delay()  # what beat sends every WEBHOOKS_POLL_SECONDS

        done = f"webhook {webhook.id}: 2 changes in 1 requests"
        deadline = time.monotonic() + 60
        while done not in worker.read_text():
            assert time.monotonic() < deadline, worker.read_text()
            time.sleep(0.1)
    log = worker.read_text()
    assert "Retry in 1s: DeliveryFailed('webhook" in log and "HTTP 503: receiver says no" in log
    assert receiver.changes() == [expected, expected]
    assert [c["area"] for c in receiver.requests[1].json["changes"]] == areas
    assert all(signature_valid(webhook.secret, r) for r in receiver.requests)
    failed, delivered = WebhookDelivery.objects.filter(webhook=webhook).order_by("started_at")
    assert (failed.ok, delivered.ok, failed.task_id) == (False, True, delivered.task_id)  # one task, retried
    assert (delivered.started_at - failed.started_at).total_seconds() >= 1  # after the backoff
    webhook = Webhook.objects.get(pk=webhook.pk)
    assert (format_cursor(webhook.cursor), webhook.consecutive_failures, webhook.active) == (expected[-1], 0, True)
