"""End to end with a real Celery worker process, broker and database: an area is found by the lookup the moment
it is written, becomes `ready` once the worker has indexed it, and is still found; likewise for an update and a
delete."""

import time

import pytest
from django.conf import settings

from testing.geo import feature
from testing.index import EAST, WEST, live_at
from testing.worker import celery_worker
from worker.celery import QUEUES
from worker.celery import app as celery_app

# A worker starts in a few seconds, and each wait below gives up after a minute with its log: room for both.
pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]


@pytest.fixture
def worker(tmp_path):
    """A worker on the index queues; tasks published to it (not run in-process)."""
    with celery_worker(tmp_path / "worker.log", queues="index,maintenance") as log:
        yield log


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


def test_beat_can_send_every_scheduled_task_to_the_broker():
    """Each entry goes through what beat does with it, the task's own option checks included (a soft time limit
    above the hard one made beat skip a task every minute), and reaches its queue on the real broker."""
    import redis
    from celery.beat import Scheduler

    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.flushdb()
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        scheduler = Scheduler(app=celery_app)
        with celery_app.producer_or_acquire() as producer:
            for name in celery_app.conf.beat_schedule:
                # Raises what beat would only log ("Couldn't apply scheduled task ...").
                scheduler.apply_async(scheduler.schedule[name], producer=producer, advance=False)
        queued = {queue: broker.llen(queue) for queue in QUEUES}
    finally:
        celery_app.conf.task_always_eager = eager
        broker.flushdb()
    assert sum(queued.values()) == len(celery_app.conf.beat_schedule) > 0


@pytest.mark.django_db
def test_each_scheduled_task_runs_once_per_period_however_many_beats_send_it(monkeypatch):
    """Two beats send every entry; each copy carries the entry's period, and only the first copy in a period runs."""
    import redis

    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    ran: list[str] = []
    clock = [1_000_000.0]
    monkeypatch.setattr("core.tasks.time.time", lambda: clock[0])
    for name, entry in celery_app.conf.beat_schedule.items():
        task = celery_app.tasks[entry["task"]]
        monkeypatch.setattr(task, "run", lambda *a, _name=name, **k: ran.append(_name))
        headers = entry["options"]["headers"]
        assert headers == {"beat_period": entry["schedule"]}
        first, second = task.apply(headers=headers), task.apply(headers=headers)  # beat A, then beat B
        assert (first.state, second.state) == ("SUCCESS", "IGNORED"), name
        clock[0] += entry["schedule"]  # the next period: one of them runs again
        assert task.apply(headers=headers).state == "SUCCESS", name
        clock[0] -= entry["schedule"]
    assert sorted(ran) == sorted([*celery_app.conf.beat_schedule] * 2)
    assert task.apply().state == "SUCCESS"  # sent by hand (no period): always runs
    broker.delete(*broker.keys("worker:period:*"))


def _area_behind_the_services_back(make_provider):
    """An area the index has not heard of: no task was queued for it."""
    from areas.models import ServiceArea
    from testing.index import geometry

    return ServiceArea.objects.create(provider=make_provider(), name="W", price="5", geometry=geometry(WEST))


def _deliveries_that_died(task_id: str, count: int) -> None:
    import redis

    from core.tasks import deliveries_key

    redis.Redis.from_url(settings.CELERY_BROKER_URL).set(deliveries_key(task_id), count)


def test_a_task_that_killed_its_worker_three_times_is_given_up_and_shown_failed(worker, make_provider, client_for):
    import redis

    from core.tasks import deliveries_key
    from hexindex.tasks import index_area

    area = _area_behind_the_services_back(make_provider)
    _deliveries_that_died("poison", 3)
    index_area.apply_async((area.id, area.geometry_version), task_id="poison")

    owner = client_for(area.provider.owner)

    def index_state():
        return owner.get(f"/api/v1/service-areas/{area.id}/").json()["properties"]["index"]

    wait_for(lambda: index_state()["status"] == "failed", worker)
    assert index_state()["error"] == "killed its worker 3 times"
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    wait_for(lambda: not broker.exists(deliveries_key("poison")), worker)
    assert (broker.llen("index"), broker.hlen("unacked")) == (0, 0)  # acknowledged: not delivered again


def test_a_task_whose_earlier_deliveries_died_fewer_times_runs_and_its_count_is_cleared(worker, make_provider):
    import redis

    from core.tasks import deliveries_key
    from hexindex.tasks import index_area

    area = _area_behind_the_services_back(make_provider)
    _deliveries_that_died("survivor", 2)
    index_area.apply_async((area.id, area.geometry_version), task_id="survivor")

    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    wait_for(lambda: "indexed area" in worker.read_text(), worker)
    wait_for(lambda: not broker.exists(deliveries_key("survivor")), worker)
    assert area.id in live_at(50.0, 10.0)
