"""No tenant can push public lookups off the index: an unapproved provider's writes never reach what public lookups
read, an approved one's cost a bounded amount, and staff can always revoke, even with Redis down."""

import random

import orjson
import pytest

from areas.models import ServiceArea
from core.redis import breaker
from hexindex import api as index
from hexindex import invalidation, redis_index
from hexindex.models import PendingMark
from testing.geo import feature, square
from testing.index import WEST, live_at, pending_state, registered_cells
from testing.net import closed_port, free_port

PROVIDERS = "/api/v1/providers/"
AREAS = "/api/v1/service-areas/"
LOOKUP = "/api/v1/lookup/"


def registered(client) -> dict:
    """Everything Redis holds about pending areas, without the empty hashes."""
    state = pending_state(client)
    return {
        "pending": state["tokens"],
        "cells": state["cells"],
        "buckets": {key: tokens for key, tokens in state["buckets"].items() if tokens},
    }


def hold_builds(monkeypatch) -> None:
    """The worker is behind: builds are queued nowhere, so whatever a write registers stays registered."""
    monkeypatch.setattr(invalidation, "enqueue", lambda **kwargs: True)
    monkeypatch.setattr(invalidation, "enqueue_refresh", lambda area_ids: True)


@pytest.fixture
def builds_wait(monkeypatch):
    hold_builds(monkeypatch)


def test_an_unapproved_providers_writes_register_nothing_in_redis(client_for, make_provider, index_redis, builds_wait):
    provider = make_provider(approved=False)
    owner = client_for(provider.owner)
    created = owner.post(AREAS, feature(WEST, provider=provider.id, name="W", price="5"), format="json")
    assert created.status_code == 201
    area_id = created.json()["id"]
    moved = owner.patch(f"{AREAS}{area_id}/", feature(square(11.0, 51.0, 0.3)), format="json")
    assert moved.status_code == 200
    assert owner.patch(f"{PROVIDERS}{provider.id}/", {"name": "Renamed"}, format="json").status_code == 200
    assert owner.delete(f"{AREAS}{area_id}/").status_code == 204
    assert registered(index_redis) == {"pending": {}, "cells": {}, "buckets": {}}


def test_an_unapproved_owner_can_write_while_redis_is_down_and_an_approved_one_cannot(
    client_for, make_provider, settings
):
    hidden, public = make_provider(approved=False), make_provider()
    settings.HEXINDEX_REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"
    for provider, expected in ((hidden, 201), (public, 503)):
        body = feature(WEST, provider=provider.id, name="W", price="5")
        assert client_for(provider.owner).post(AREAS, body, format="json").status_code == expected
    assert list(ServiceArea.objects.values_list("provider_id", flat=True)) == [hidden.id]


def test_editing_one_area_in_a_loop_keeps_one_copy_of_each_pending_cell(make_area, index_redis, builds_wait):
    from areas.services import area_update
    from testing.index import geometry

    area = make_area(square(10.0, 50.0, 0.2))
    shapes = [square(10.0, 50.0, 0.2), square(10.05, 50.05, 0.2)]
    for n in range(40):
        area_update(area=ServiceArea.objects.get(pk=area.pk), data={"geometry": geometry(shapes[n % 2])})
    cells = registered_cells(index_redis, area.id)
    assert len(cells) == len(set(cells))  # each cell once, however many edits
    members = {key for key, ids in registered(index_redis)["cells"].items() if str(area.id).encode() in ids}
    assert len(members) == len(cells)


@pytest.mark.timeout(600)  # about a minute alone; several on a machine shared with other runs
def test_public_lookups_stay_on_the_index_while_accounts_rename_and_edit_in_a_loop(
    api, client_for, make_provider, make_area, index_all, monkeypatch, settings
):
    """The flood the issue measured: an unapproved account with 260 tiny areas renaming its provider in a loop sent
    up to 42 % of public lookups to PostgreSQL. Here an unapproved and an approved account each hold 260 tiny areas
    over the same city and rename and redraw in a loop while the worker is behind; public lookups at random points
    of the city must stay on the index, and stay exact."""
    limit, settings.HEXINDEX_PENDING_AREAS_PER_OWNER = settings.HEXINDEX_PENDING_AREAS_PER_OWNER, 1000  # setting up
    public = make_provider()
    for n in range(6):
        make_area(square(10.0 + n * 0.05, 50.0, 0.3), provider=public, price=f"{10 + n}.00")
    index_all()
    rng = random.Random(7)
    tenants = []
    for approved in (False, True):
        provider = make_provider(approved=approved)
        areas = [
            make_area(square(10.0 + rng.uniform(-0.2, 0.2), 50.0 + rng.uniform(-0.2, 0.2), 0.01), provider=provider)
            for _ in range(260)
        ]
        tenants.append((client_for(provider.owner), provider, areas))
    index_all()
    hold_builds(monkeypatch)
    settings.HEXINDEX_PENDING_AREAS_PER_OWNER = limit

    sources, edits = [], []
    for n in range(150):  # past the approved owner's limit on changes waiting to be indexed (128 areas)
        for owner, provider, areas in tenants:
            renamed = owner.patch(f"{PROVIDERS}{provider.id}/", {"name": f"Flood {n}"}, format="json")
            assert renamed.status_code == 200
            area = areas[n % len(areas)]
            moved = square(10.0 + rng.uniform(-0.2, 0.2), 50.0 + rng.uniform(-0.2, 0.2), 0.01)
            edits.append(owner.patch(f"{AREAS}{area.id}/", feature(moved), format="json").status_code)
        for _ in range(3):
            lat, lng = 50.0 + rng.uniform(-0.25, 0.25), 10.0 + rng.uniform(-0.25, 0.25)
            result = index.lookup(lat=lat, lng=lng)
            sources.append(result.source)
            assert result.body == index.lookup_exact(lat=lat, lng=lng).body
    on_index = sources.count("index") / len(sources)
    assert on_index >= 0.95, f"{on_index:.0%} of {len(sources)} lookups answered from the index"
    assert edits.count(200) == 150 + 128 and set(edits) == {200, 429}  # the unapproved one's all; 128 approved


def test_a_revocation_commits_while_redis_is_down_and_reaches_redis_when_it_is_back(
    api, client_for, make_user, make_area, index_all, settings
):
    area = make_area(WEST)
    index_all()
    assert area.id in live_at(50.0, 10.0)
    staff = client_for(make_user(staff=True))
    working_url = settings.HEXINDEX_REDIS_URL
    settings.HEXINDEX_REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"
    settings.HEXINDEX_BREAKER_SECONDS = 0.0

    revoked = staff.post(f"{PROVIDERS}{area.provider_id}/revoke/")
    assert revoked.status_code == 200 and revoked.json()["approved"] is False
    assert PendingMark.objects.filter(area_id=area.id).exists()  # kept in PostgreSQL until Redis takes it
    assert orjson.loads(api.get(LOOKUP, {"lat": 50.0, "lng": 10.0}).content)["results"] == []  # PostGIS answers

    settings.HEXINDEX_REDIS_URL = working_url  # back, with the revoked area's records still live
    assert area.id in live_at(50.0, 10.0)
    assert orjson.loads(api.get(LOOKUP, {"lat": 50.0, "lng": 10.0}).content)["results"] == []
    assert not PendingMark.objects.exists()  # replayed before this process trusted Redis again
    assert area.id in redis_index.pending_tokens_all()


def test_the_worker_replays_deferred_registrations_for_processes_that_never_saw_redis_fail(make_area, index_all):
    from hexindex.tasks import replay_deferred

    area = make_area(WEST)
    index_all()
    PendingMark.objects.create(area_id=area.id, cells=None)
    assert breaker.failures == 0  # this process would trust Redis as it is
    assert replay_deferred() == 1
    assert area.id in redis_index.pending_tokens_all() and not PendingMark.objects.exists()
    assert replay_deferred() == 0


@pytest.fixture
def shared_point(make_provider, make_area, index_all):
    """At (50, 10): an area of an approved provider and a larger, cheaper one of an unapproved provider."""
    public = make_area(WEST, price="20.00")
    make_area(square(10.0, 50.0, 1.0), provider=make_provider(approved=False), price="1.00")
    index_all()
    return public


@pytest.mark.parametrize("redis_state", ["down", "empty"])
def test_unapproved_areas_stay_out_of_exact_answers_with_redis_down_or_empty(
    api, shared_point, settings, index_redis, redis_state
):
    if redis_state == "down":
        settings.HEXINDEX_REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"
    else:
        index_redis.flushdb()  # restarted empty: answered by the exact query while it is rebuilt
    single = orjson.loads(api.get(LOOKUP, {"lat": 50.0, "lng": 10.0}).content)
    assert [r["id"] for r in single["results"]] == [shared_point.id]
    batch = api.post("/api/v1/lookup/batch/", {"points": [{"lat": 50.0, "lng": 10.0}] * 2}, format="json").json()
    assert [[r["id"] for r in answer["results"]] for answer in batch["results"]] == [[shared_point.id]] * 2
    trip = orjson.loads(
        api.get("/api/v1/lookup/trip/", {"from_lat": 50.0, "from_lng": 10.0, "to_lat": 50.1, "to_lng": 10.1}).content
    )
    assert [r["provider"]["id"] for r in trip["results"]] == [shared_point.provider_id]


def test_an_owner_with_too_many_changes_waiting_is_refused_until_the_worker_catches_up(
    client_for, make_provider, settings, index_redis, builds_wait, index_all
):
    settings.HEXINDEX_PENDING_AREAS_PER_OWNER = 3
    provider = make_provider()
    owner = client_for(provider.owner)

    def create(n: int):
        return owner.post(AREAS, feature(square(10.0 + n, 50.0, 0.1), provider=provider.id, name=f"A{n}", price="1"))

    assert [create(n).status_code for n in range(3)] == [201, 201, 201]
    refused = create(3)
    assert refused.status_code == 429 and refused.json()["code"] == "index_busy"
    assert int(refused["Retry-After"]) >= 1
    assert ServiceArea.objects.count() == 3  # nothing stored
    other = make_provider()  # another owner is not held back by it
    body = feature(WEST, provider=other.id, name="B", price="1")
    assert client_for(other.owner).post(AREAS, body, format="json").status_code == 201
    index_all()  # the worker catches up: the registrations are cleared, and the owner may write again
    assert index_redis.scard(f"hx:po:{provider.owner_id}") == 0
    assert create(3).status_code == 201


def test_an_area_moved_across_the_map_in_a_loop_cannot_pile_up_cells(
    client_for, make_area, settings, index_redis, builds_wait
):
    settings.HEXINDEX_PENDING_CELLS_PER_AREA = 500
    area = make_area(square(10.0, 50.0, 0.05))
    owner = client_for(area.provider.owner)
    statuses = []
    for n in range(40):
        moved = feature(square(10.0 + n * 0.5, 50.0, 0.05))
        statuses.append(owner.patch(f"{AREAS}{area.id}/", moved, format="json").status_code)
    assert 429 in statuses and set(statuses) == {200, 429}
    # Refused once 500 are registered: the registration that crossed the line is the most that can be on top.
    assert 500 <= len(registered_cells(index_redis, area.id)) <= 500 + 64


@pytest.fixture
def full_redis(settings, tmp_path):
    """A Redis of its own for the index, holding a live index, then filled to its memory limit (noeviction)."""
    import subprocess
    import time

    import redis

    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path), "--maxmemory-policy", "noeviction"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    settings.HEXINDEX_REDIS_URL = f"redis://127.0.0.1:{port}/0"
    redis_index.set_live_generation(1)

    def fill() -> None:
        client.config_set("maxmemory", client.info("memory")["used_memory"] + 2**20)
        try:
            for n in range(10_000):
                client.set(f"ballast:{n}", b"x" * 65536)
        except redis.ResponseError as exc:
            assert "maxmemory" in str(exc)
        else:
            raise AssertionError("Redis never filled")

    yield fill
    server.terminate()
    server.wait(10)


def test_a_full_redis_keeps_lookups_exact_limits_on_and_revocations_possible(
    api, client_for, make_user, make_area, index_all, full_redis, settings, rate_clock
):
    from partners.models import Partner
    from partners.services import key_create

    area = make_area(WEST)
    index_all()
    _, key = key_create(partner=Partner.objects.create(name="Acme Travel"), name="k", rate_per_minute=8)
    full_redis()

    # A full Redis refuses every command queued in a transaction, reads too: the lookup's read is answered by the
    # exact query instead, and stays exact.
    assert index.lookup(lat=50.0, lng=10.0).body == index.lookup_exact(lat=50.0, lng=10.0).body
    keyed = [api.get(LOOKUP, {"lat": 50.0, "lng": 10.0}, HTTP_X_API_KEY=key) for _ in range(3)]
    assert [r.status_code for r in keyed] == [200, 200, 429]  # the counter cannot be written: 2 = 8 x 0.25 here
    assert [r["id"] for r in orjson.loads(keyed[0].content)["results"]] == [area.id]

    staff = client_for(make_user(staff=True))
    assert staff.post(f"{PROVIDERS}{area.provider_id}/revoke/").status_code == 200  # kept in PostgreSQL meanwhile
    assert orjson.loads(api.get(LOOKUP, {"lat": 50.0, "lng": 10.0}).content)["results"] == []
