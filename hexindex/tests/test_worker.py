"""End to end with a real Celery worker process, broker and database: an area is found by the lookup the moment
it is written, becomes `ready` once the worker has indexed it, and is still found; likewise for an update and a
delete."""

import os
import subprocess
import sys
import time

import pytest
from django.conf import settings
from django.db import connection

from conftest import feature, square
from hexindex.tests.helpers import live_at
from worker.celery import app as celery_app

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

WEST = square(10.0, 50.0, 0.2)
EAST = square(12.0, 50.0, 0.2)


@pytest.fixture
def worker(tmp_path):
    """A worker on the test broker and the test database, and tasks published to it (not run in-process)."""
    import redis

    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings.test",
        "TEST_DATABASE_NAME": connection.settings_dict["NAME"],
        "CELERY_TASK_ALWAYS_EAGER": "false",
    }
    log = tmp_path / "worker.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "worker", "worker", "--pool", "solo", "-Q", "index,maintenance",
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


def wait_for(predicate, log, timeout=60):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


def test_area_lifecycle_with_a_real_worker(worker, client_for, make_provider, api):
    provider = make_provider()
    owner = client_for(provider.owner)

    def found(lat, lng):
        return [r["id"] for r in api.get("/api/v1/lookup/", {"lat": lat, "lng": lng}).json()["results"]]

    def status(area_id):
        return owner.get(f"/api/v1/service-areas/{area_id}/").json()["properties"]["index"]["status"]

    created = owner.post(
        "/api/v1/service-areas/", feature(WEST, provider=provider.id, name="W", price="5"), format="json"
    )
    assert created.status_code == 201
    area_id = created.json()["id"]
    assert created.json()["properties"]["index"]["status"] == "pending"
    assert found(50.0, 10.0) == [area_id]  # before the worker has had a chance

    wait_for(lambda: status(area_id) == "ready", worker)
    assert found(50.0, 10.0) == [area_id]
    assert area_id in live_at(50.0, 10.0)  # live in Redis

    updated = owner.patch(f"/api/v1/service-areas/{area_id}/", {"type": "Feature", "geometry": EAST}, format="json")
    assert updated.json()["properties"]["index"]["status"] == "pending"
    assert (found(50.0, 12.0), found(50.0, 10.0)) == ([area_id], [])
    wait_for(lambda: status(area_id) == "ready", worker)
    assert (found(50.0, 12.0), found(50.0, 10.0)) == ([area_id], [])
    assert "hexindex.index_area" in worker.read_text() and "succeeded" in worker.read_text()

    assert owner.delete(f"/api/v1/service-areas/{area_id}/").status_code == 204
    assert found(50.0, 12.0) == []
