"""Partner API keys on the lookup endpoints: a limit per key, a low one without a key, revocation at once, usage per
key and day."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from partners import keys, limits, usage
from partners.models import KeyUsage, Partner, PartnerKey
from partners.services import key_create
from testing.geo import square
from testing.index import drop_index
from testing.net import SilentServer, closed_port

LOOKUP = "/api/v1/lookup/"
BATCH = "/api/v1/lookup/batch/"
TRIP = "/api/v1/lookup/trip/"
CHANGES = "/api/v1/changes/"
USAGE = "/api/v1/usage/"
AIRPORT = {"lat": 40.6413, "lng": -73.7781}


@pytest.fixture(autouse=True)
def fresh_process(monkeypatch, rate_clock):
    """Each test as a new web process: no keys remembered, no Redis pause; and at the start of a one-minute rate
    window (rate_clock), so that no test's counts are split across two windows."""
    keys.forget_all()
    limits.forget_all()


@pytest.fixture
def airport(make_area, index_all):
    area = make_area(square(-73.78, 40.64, 0.05), price="45.00")
    index_all()
    return area


@pytest.fixture
def make_key(db):
    def make(*, rate=600, partner=None, **fields):
        partner = partner or Partner.objects.create(name="Acme Travel")
        record, key = key_create(partner=partner, name="booking engine", rate_per_minute=rate, **fields)
        return record, key

    return make


def lookup_ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [r["id"] for r in response.json()["results"]]


def test_a_key_gets_its_own_limit_then_429_with_retry_after(api, airport, make_key, settings):
    settings.LOOKUP_ANONYMOUS_RATE_PER_MINUTE = 1
    _, key = make_key(rate=3)
    _, other = make_key(rate=3)
    remaining = []
    for _ in range(3):
        response = api.get(LOOKUP, AIRPORT, HTTP_X_API_KEY=key)
        assert lookup_ids(response) == [airport.id]
        remaining.append(response["X-RateLimit-Remaining"])
    assert remaining == ["2", "1", "0"]
    refused = api.get(LOOKUP, AIRPORT, HTTP_X_API_KEY=key)
    assert refused.status_code == 429 and refused.json()["code"] == "rate_limited"
    assert int(refused["Retry-After"]) == 60  # the clock stands at the start of the window
    assert lookup_ids(api.get(LOOKUP, AIRPORT, HTTP_X_API_KEY=other)) == [airport.id]  # its own budget
    assert lookup_ids(api.get(LOOKUP, AIRPORT, HTTP_AUTHORIZATION=f"Api-Key {other}")) == [airport.id]


def test_a_batch_counts_its_points_and_a_trip_two(api, airport, make_key):
    _, key = make_key(rate=5)
    points = {"points": [{"lat": 40.6413, "lng": -73.7781}] * 3}
    first = api.post(BATCH, points, format="json", HTTP_X_API_KEY=key)
    assert first.status_code == 200 and first["X-RateLimit-Remaining"] == "2"
    trip = {"from_lat": 40.64, "from_lng": -73.78, "to_lat": 40.65, "to_lng": -73.77}
    assert api.get(TRIP, trip, HTTP_X_API_KEY=key)["X-RateLimit-Remaining"] == "0"
    too_many = api.post(BATCH, points, format="json", HTTP_X_API_KEY=key)
    assert too_many.status_code == 429 and "needs 3" in too_many.json()["detail"]


def test_without_a_key_a_low_limit_per_address(api, airport, make_key, settings):
    settings.LOOKUP_ANONYMOUS_RATE_PER_MINUTE = 2
    assert [api.get(LOOKUP, AIRPORT).status_code for _ in range(3)] == [200, 200, 429]
    assert api.get(CHANGES).status_code == 429  # the same budget for every public endpoint
    assert api.get(LOOKUP, AIRPORT, REMOTE_ADDR="203.0.113.9").status_code == 200  # another address
    _, key = make_key()
    assert lookup_ids(api.get(LOOKUP, AIRPORT, HTTP_X_API_KEY=key)) == [airport.id]


@pytest.mark.parametrize("sent", ["nonsense", "abcdefgh.wrongsecret", "", "x" * 500])
def test_an_unknown_key_is_a_401_never_anonymous(api, airport, make_key, sent):
    make_key()
    response = api.get(LOOKUP, AIRPORT, HTTP_X_API_KEY=sent)
    assert response.status_code == 401 and response.json()["code"] == "invalid_api_key"
    assert response["WWW-Authenticate"] == "Api-Key"


def test_a_revoked_key_is_refused_from_the_next_request_though_this_process_knew_it(
    api, airport, make_key, make_user, client_for, django_capture_on_commit_callbacks
):
    record, key = make_key()
    assert api.get(LOOKUP, AIRPORT, HTTP_X_API_KEY=key).status_code == 200  # verified and remembered
    staff = client_for(make_user(staff=True))
    with django_capture_on_commit_callbacks(execute=True):
        assert staff.delete(f"/api/v1/partner-keys/{record.prefix}/").status_code == 204
    assert api.get(LOOKUP, AIRPORT, HTTP_X_API_KEY=key).status_code == 401
    record.refresh_from_db()
    assert record.revoked


def test_another_process_hears_of_a_revocation_through_the_epoch(api, airport, make_key, monkeypatch):
    record, key = make_key()
    assert api.get(LOOKUP, AIRPORT, HTTP_X_API_KEY=key).status_code == 200
    # Revoked elsewhere (another process, the admin): this process's memory is left as it was.
    remembered = dict(keys._keys.known)
    PartnerKey.objects.filter(pk=record.pk).update(revoked=True)
    pipe = keys.index_client().pipeline(transaction=False)  # what keys_changed does in the other process
    for tag in keys.bucket_tags():
        pipe.incr(keys.epoch_key(tag))
    pipe.execute()
    keys._keys.known.update(remembered)
    assert api.get(LOOKUP, AIRPORT, HTTP_X_API_KEY=key).status_code == 401


def test_an_expired_key_is_refused(api, airport, make_key):
    _, expired = make_key(expiry_date=timezone.now() - timedelta(seconds=1))
    assert api.get(LOOKUP, AIRPORT, HTTP_X_API_KEY=expired).status_code == 401
    record, soon = make_key(expiry_date=timezone.now() + timedelta(days=1))
    assert api.get(LOOKUP, AIRPORT, HTTP_X_API_KEY=soon).status_code == 200
    keys._keys.known[soon] = keys._keys.known[soon].__class__(
        record.pk, record.prefix, record.partner_id, 600, timezone.now().timestamp() - 1, 1e18
    )  # remembered, and its expiry has just passed
    assert api.get(LOOKUP, AIRPORT, HTTP_X_API_KEY=soon).status_code == 401


def test_a_new_limit_applies_at_once(api, airport, make_key, make_user, client_for, django_capture_on_commit_callbacks):
    record, key = make_key(rate=100)
    assert api.get(LOOKUP, AIRPORT, HTTP_X_API_KEY=key)["X-RateLimit-Limit"] == "100"
    staff = client_for(make_user(staff=True))
    with django_capture_on_commit_callbacks(execute=True):
        assert staff.patch(f"/api/v1/partner-keys/{record.prefix}/", {"rate_per_minute": 2}).status_code == 200
    response = api.get(LOOKUP, AIRPORT, HTTP_X_API_KEY=key)
    assert (response.status_code, response["X-RateLimit-Limit"]) == (200, "2")
    assert api.get(LOOKUP, AIRPORT, HTTP_X_API_KEY=key).status_code == 429


def test_usage_per_key_and_day_for_the_partner_and_staff(api, airport, make_key, make_user, client_for, settings):
    settings.LOOKUP_ANONYMOUS_RATE_PER_MINUTE = 1
    record, key = make_key(rate=4)
    other_record, other_key = make_key(rate=10)
    for _ in range(2):
        api.get(LOOKUP, AIRPORT, HTTP_X_API_KEY=key)
    api.post(BATCH, {"points": [AIRPORT, AIRPORT]}, format="json", HTTP_X_API_KEY=key)
    api.get(LOOKUP, AIRPORT, HTTP_X_API_KEY=key)  # over the limit
    api.get(LOOKUP, AIRPORT, HTTP_X_API_KEY=other_key)
    api.get(TRIP, {"from_lat": 40.64, "from_lng": -73.78, "to_lat": 1, "to_lng": 2}, HTTP_X_API_KEY=other_key)
    api.get(CHANGES, HTTP_X_API_KEY=other_key)
    api.get(LOOKUP, AIRPORT)
    api.get(LOOKUP, AIRPORT)  # anonymous, over the limit
    today = timezone.now().date().isoformat()

    mine = api.get(USAGE, HTTP_X_API_KEY=key)
    assert mine.status_code == 200
    assert mine.json() == [
        {
            "day": today,
            "key": record.prefix,
            "key_name": "booking engine",
            "partner": record.partner_id,
            "lookups": 2,
            "batches": 1,
            "batch_points": 2,
            "trips": 0,
            "feed_reads": 0,
            "throttled": 1,
        }
    ]
    staff = client_for(make_user(staff=True)).get(USAGE)
    rows = {
        row["key"]: tuple(
            row[name] for name in ("lookups", "batches", "batch_points", "trips", "feed_reads", "throttled")
        )
        for row in staff.json()
    }
    assert rows == {
        record.prefix: (2, 1, 2, 0, 0, 1),
        other_record.prefix: (1, 0, 0, 1, 1, 0),
        None: (1, 0, 0, 0, 0, 1),
    }
    assert api.get(USAGE).status_code == 401
    assert client_for(make_user()).get(USAGE).status_code == 401  # a provider's token is not a partner's key
    assert api.get(USAGE, {"since": "yesterday"}, HTTP_X_API_KEY=key).status_code == 400


def test_usage_survives_a_redis_restart(api, airport, make_key, index_redis):
    _, key = make_key()
    for _ in range(3):
        assert api.get(LOOKUP, AIRPORT, HTTP_X_API_KEY=key).status_code == 200
    index_redis.flushall()  # Redis restarted empty (make run's keeps nothing): lookups go on, exact
    for _ in range(2):
        assert api.get(LOOKUP, AIRPORT, HTTP_X_API_KEY=key).status_code == 200
    assert [row["lookups"] for row in api.get(USAGE, HTTP_X_API_KEY=key).json()] == [5]


def test_each_process_writes_its_usage_every_few_seconds_without_being_asked(api, airport, make_key, settings):
    record, key = make_key()
    settings.USAGE_FLUSH_SECONDS = 3600.0
    api.get(LOOKUP, AIRPORT, HTTP_X_API_KEY=key)
    assert not KeyUsage.objects.exists()  # not due yet: counted in this process
    settings.USAGE_FLUSH_SECONDS = 0.0
    api.get(LOOKUP, AIRPORT, HTTP_X_API_KEY=key)
    assert KeyUsage.objects.get(key=record).lookups == 2
    assert usage.unwritten() == {}


@pytest.mark.django_db(transaction=True)
def test_an_idle_process_writes_what_it_counted_by_itself(make_key, settings):
    record, _ = make_key()
    settings.USAGE_FLUSH_SECONDS = 0.5
    settings.USAGE_FLUSH_IN_BACKGROUND = True
    usage.count(key_id=record.pk, kind="lookup")  # then no request comes to this process
    try:
        deadline = time.monotonic() + 10
        while not KeyUsage.objects.filter(key=record).exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert KeyUsage.objects.get(key=record).lookups == 1
        assert usage.unwritten() == {}
    finally:
        settings.USAGE_FLUSH_IN_BACKGROUND = False
        usage._flusher[0].join(timeout=5)  # gone before the next test counts anything
    assert not usage._flusher[0].is_alive()


def test_a_flush_that_fails_keeps_its_counts_for_the_next_one(make_key, monkeypatch):
    from django.db import DatabaseError

    record, _ = make_key()
    usage.count(key_id=record.pk, kind="batch", points=7)
    write = usage._write

    def database_down(taken):
        raise DatabaseError("connection refused")

    monkeypatch.setattr(usage, "_write", database_down)
    assert usage.flush() == 0
    monkeypatch.setattr(usage, "_write", write)
    usage.count(key_id=record.pk, kind="lookup")
    assert usage.flush() == 1
    stored = KeyUsage.objects.get(key=record)
    assert (stored.lookups, stored.batches, stored.batch_points) == (1, 1, 7)
    assert usage.flush() == 0  # nothing added twice


def test_without_redis_each_process_keeps_its_share_of_the_limits_and_counts_usage(api, airport, make_key, settings):
    settings.LOOKUP_ANONYMOUS_RATE_PER_MINUTE = 2
    settings.RATE_LIMIT_FALLBACK_SHARE = 0.5
    settings.HEXINDEX_REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"  # refused: PostGIS answers
    record, key = make_key(rate=4)
    answered = [api.get(LOOKUP, AIRPORT, HTTP_X_API_KEY=key) for _ in range(3)]
    assert [r.status_code for r in answered] == [200, 200, 429]
    assert [(r["X-RateLimit-Limit"], r["X-RateLimit-Remaining"]) for r in answered] == [
        ("2", "1"),
        ("2", "0"),
        ("2", "0"),
    ]
    assert lookup_ids(answered[0]) == [airport.id]
    assert [api.get(LOOKUP, AIRPORT).status_code for _ in range(2)] == [200, 429]
    assert api.get(LOOKUP, AIRPORT, HTTP_X_API_KEY="abcdefgh.wrong").status_code == 401  # keys still checked
    usage.flush()
    stored = KeyUsage.objects.get(key=record)
    assert (stored.lookups, stored.throttled) == (2, 1)


def test_limits_hold_while_the_index_is_rebuilt(api, airport, make_key, index_redis):
    _, key = make_key(rate=2)
    drop_index(index_redis)  # Redis restarted empty: lookups answered by PostGIS until the rebuild is done
    answered = [api.get(LOOKUP, AIRPORT, HTTP_X_API_KEY=key) for _ in range(3)]
    assert [r.status_code for r in answered] == [200, 200, 429]
    assert [r["X-RateLimit-Remaining"] for r in answered] == ["1", "0", "0"]


def test_an_address_sending_unknown_keys_is_refused_before_the_database(
    api, airport, make_key, settings, django_assert_num_queries
):
    settings.PARTNER_UNKNOWN_KEYS_PER_MINUTE = 3
    _, key = make_key()
    for n in range(3):
        assert api.get(LOOKUP, AIRPORT, HTTP_X_API_KEY=f"guess{n}.secret").status_code == 401
    with django_assert_num_queries(0):
        refused = api.get(LOOKUP, AIRPORT, HTTP_X_API_KEY="guess9.secret")
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    other = api.get(LOOKUP, AIRPORT, HTTP_X_API_KEY=key, REMOTE_ADDR="198.51.100.7")
    assert other.status_code == 200  # another address is not held back


def test_staff_create_list_and_revoke_keys_the_key_is_shown_once(make_user, client_for, api):
    staff = client_for(make_user(staff=True))
    partner = staff.post("/api/v1/partners/", {"name": "Acme Travel", "contact_email": "it@acme.example"}).json()
    created = staff.post("/api/v1/partner-keys/", {"partner": partner["id"], "name": "prod", "rate_per_minute": 50})
    assert created.status_code == 201
    body = created.json()
    key = body["key"]
    assert key.startswith(body["prefix"] + ".") and body["rate_per_minute"] == 50 and not body["revoked"]
    assert PartnerKey.objects.get_from_key(key).partner_id == partner["id"]
    listed = staff.get("/api/v1/partner-keys/").json()["results"]
    assert [k["prefix"] for k in listed] == [body["prefix"]] and "key" not in listed[0]
    assert key not in staff.get(f"/api/v1/partner-keys/{body['prefix']}/").content.decode()
    moved = staff.patch(f"/api/v1/partner-keys/{body['prefix']}/", {"partner": partner["id"] + 1000})
    assert moved.status_code == 400
    assert client_for(make_user()).get("/api/v1/partner-keys/").status_code == 403
    assert api.get("/api/v1/partners/").status_code == 401
    assert staff.delete(f"/api/v1/partner-keys/{body['prefix']}/").status_code == 204
    assert staff.get(f"/api/v1/partner-keys/{body['prefix']}/").json()["revoked"] is True


def test_the_admin_shows_a_new_key_once_and_usage(make_user, client, make_key):
    staff = make_user(staff=True)
    staff.is_superuser = True
    staff.save()
    client.force_login(staff)
    partner = Partner.objects.create(name="Acme Travel")
    response = client.post(
        "/admin/partners/partnerkey/add/",
        {"name": "from the admin", "partner": partner.id, "rate_per_minute": 60},
        follow=True,
    )
    assert response.status_code == 200
    record = PartnerKey.objects.get(name="from the admin")
    assert f"{record.prefix}." in response.content.decode()
    record_usage, _ = make_key()
    KeyUsage.objects.create(key=record_usage, day=timezone.now().date(), lookups=12, batch_points=30)
    page = client.get("/admin/partners/keyusage/")
    assert page.status_code == 200 and "Acme Travel" in page.content.decode()
    assert client.get(f"/admin/partners/partner/{partner.id}/change/").status_code == 200


def test_a_lookup_counts_in_its_own_redis_read_not_a_round_trip_of_its_own(api, airport, make_key, monkeypatch):
    _, key = make_key(rate=2)
    assert lookup_ids(api.get(LOOKUP, AIRPORT, HTTP_X_API_KEY=key)) == [airport.id]  # the key verified once

    def no_round_trip(groups):
        raise AssertionError(f"a round trip of its own: {groups}")

    sent = limits.send_groups
    monkeypatch.setattr(limits, "send_groups", no_round_trip)
    response = api.get(LOOKUP, AIRPORT, HTTP_X_API_KEY=key)
    assert lookup_ids(response) == [airport.id] and response["X-RateLimit-Remaining"] == "0"
    monkeypatch.setattr(limits, "send_groups", sent)
    assert api.get(LOOKUP, AIRPORT, HTTP_X_API_KEY=key).status_code == 429


def test_past_its_limit_a_caller_is_refused_before_any_lookup(api, airport, make_key, monkeypatch):
    from areas.api import partner as views

    _, key = make_key(rate=1)
    assert api.get(LOOKUP, AIRPORT, HTTP_X_API_KEY=key).status_code == 200
    assert api.get(LOOKUP, AIRPORT, HTTP_X_API_KEY=key).status_code == 429  # looked up, answer discarded

    def no_lookup(**kwargs):
        raise AssertionError("looked up for a caller already over its limit")

    monkeypatch.setattr(views, "lookup", no_lookup)
    for _ in range(3):
        refused = api.get(LOOKUP, AIRPORT, HTTP_X_API_KEY=key)
        assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert KeyUsage.objects.count() == 0 and usage.flush() == 1
    stored = KeyUsage.objects.get()
    assert (stored.lookups, stored.throttled) == (1, 4)


def test_a_refused_caller_is_admitted_again_when_the_next_window_starts(api, airport, make_key, rate_clock):
    _, key = make_key(rate=1)
    assert api.get(LOOKUP, AIRPORT, HTTP_X_API_KEY=key).status_code == 200
    rate_clock.advance(59)
    refused = api.get(LOOKUP, AIRPORT, HTTP_X_API_KEY=key)
    assert (refused.status_code, refused["Retry-After"]) == (429, "1")  # the same window, one second left
    rate_clock.next_window()
    admitted = api.get(LOOKUP, AIRPORT, HTTP_X_API_KEY=key)
    assert (admitted.status_code, admitted["X-RateLimit-Remaining"]) == (200, "0")
    assert lookup_ids(admitted) == [airport.id]


def test_a_silent_redis_costs_one_timeout_not_two(api, airport, make_key, settings):
    import time

    _, key = make_key(rate=16)  # its share without Redis: 4 a minute in this process
    settings.HEXINDEX_LOOKUP_TIMEOUT = 0.5
    settings.REDIS_SOCKET_TIMEOUT = 30.0  # what any other Redis client of the process would wait
    settings.HEXINDEX_BREAKER_SECONDS = 60.0  # open for the whole test, however slow the machine
    with SilentServer() as silent:  # accepts connections and never answers
        settings.HEXINDEX_REDIS_URL = silent.url()
        started = time.monotonic()
        assert lookup_ids(api.get(LOOKUP, AIRPORT, HTTP_X_API_KEY=key)) == [airport.id]
        first = time.monotonic() - started
        # One connection, so one timeout: the rate limit did not try again with a round trip of its own.
        assert silent.connections() == 1
        # The lookup's own timeout applied (0.5 s), not another client's (30 s): a generous bound, far below that.
        assert first < 10.0, first
        for _ in range(3):
            assert lookup_ids(api.get(LOOKUP, AIRPORT, HTTP_X_API_KEY=key)) == [airport.id]
        # ... and the limit still holds, counted in this process
        assert api.get(LOOKUP, AIRPORT, HTTP_X_API_KEY=key).status_code == 429
        assert silent.connections() == 1  # then neither waits: nothing tried Redis again


def test_refusals_are_counted_not_logged_one_by_one(api, airport, settings, caplog):
    settings.LOOKUP_ANONYMOUS_RATE_PER_MINUTE = 1
    api.get(LOOKUP, AIRPORT)
    with caplog.at_level("WARNING", logger="django.request"):
        assert [api.get(LOOKUP, AIRPORT).status_code for _ in range(5)] == [429] * 5
    assert not [record for record in caplog.records if record.name == "django.request"]


def test_reading_usage_needs_no_redis(api, airport, make_key, settings):
    _, key = make_key()
    api.get(LOOKUP, AIRPORT, HTTP_X_API_KEY=key)
    settings.HEXINDEX_REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"  # refused
    response = api.get(USAGE, HTTP_X_API_KEY=key)
    assert response.status_code == 200
    assert [row["lookups"] for row in response.json()] == [1]


def test_an_owner_testing_include_mine_has_a_limit_of_its_own_not_the_addresses(
    api, airport, make_user, client_for, settings
):
    settings.LOOKUP_ANONYMOUS_RATE_PER_MINUTE = 1
    settings.LOOKUP_OWNER_RATE_PER_MINUTE = 3
    owner = client_for(make_user())
    mine = {**AIRPORT, "include_mine": "true"}
    answered = [owner.get(LOOKUP, mine) for _ in range(4)]
    assert [r.status_code for r in answered] == [200, 200, 200, 429]
    assert answered[0]["X-RateLimit-Limit"] == "3"
    assert api.get(LOOKUP, AIRPORT).status_code == 200  # the address's own budget is untouched
