"""/api/v1/webhooks/: partners manage their own webhooks with their API key, staff every one with a token; the
secret is shown once; URLs are checked; a signed ping is queued for the worker (202) and its delivery shows what the
URL answered."""

import uuid
from datetime import timedelta

import kombu.exceptions
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from partners.models import PartnerKey
from webhooks import services
from webhooks.models import Webhook, WebhookDelivery
from webhooks.targets import HTTPS_REQUIRED, NO_CREDENTIALS, NOT_PUBLIC
from webhooks.tests.helpers import Receiver, signature_valid
from webhooks.views import NO_SUCH_DELIVERY, PARTNER_REQUIRED

URL = "/api/v1/webhooks/"
PUBLIC = "https://hooks.partner.example/areas"

pytestmark = pytest.mark.django_db


def test_a_partner_registers_a_webhook_and_sees_its_secret_only_once(partner, key_client):
    client = key_client(partner)
    created = client.post(URL, {"url": PUBLIC, "description": "cache refresh"}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    webhook = Webhook.objects.get(pk=body["id"])
    assert body["secret"] == webhook.secret and len(webhook.secret) >= 40
    assert (body["partner"], body["url"], body["active"], body["consecutive_failures"]) == (partner.id, PUBLIC, True, 0)
    assert body["cursor"] == f"{webhook.cursor_xid}-{webhook.cursor_id}"

    shown = client.get(f"{URL}{webhook.id}/").json()
    listed = client.get(URL).json()["results"]
    changed = client.patch(f"{URL}{webhook.id}/", {"description": "renamed"}, format="json").json()
    assert [w["id"] for w in listed] == [webhook.id]
    for answer in (shown, listed[0], changed):
        assert "secret" not in answer and webhook.secret not in str(answer)
    assert changed["description"] == "renamed"


def test_a_partner_may_choose_a_secret_of_24_characters_or_more(
    partner, key_client, receiver, django_capture_on_commit_callbacks
):
    client = key_client(partner)
    short = client.post(URL, {"url": receiver.url, "secret": "x" * 23}, format="json")
    assert short.status_code == 400 and "secret" in short.json()
    chosen = "a-secret-of-24-characters"
    created = client.post(URL, {"url": receiver.url, "secret": chosen}, format="json").json()
    assert created["secret"] == chosen
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"{URL}{created['id']}/test/")
    assert signature_valid(chosen, receiver.requests[0])


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://hooks.partner.example/areas", HTTPS_REQUIRED),
        ("https://10.1.2.3/hook", NOT_PUBLIC),
        ("https://169.254.169.254/latest/meta-data/", NOT_PUBLIC),
        ("https://127.0.0.1:8443/hook", NOT_PUBLIC),
        ("http://localhost:8080/hook", NOT_PUBLIC),
        ("https://[::1]/hook", NOT_PUBLIC),
        ("https://ops:pw@hooks.partner.example/", NO_CREDENTIALS),
    ],
)
def test_urls_must_be_public_and_https(partner, key_client, settings, url, message):
    settings.WEBHOOKS_ALLOW_LOCAL = False
    client = key_client(partner)
    refused = client.post(URL, {"url": url}, format="json")
    assert refused.status_code == 400
    assert refused.json() == {"url": [message]}
    assert not Webhook.objects.exists()
    webhook = services.webhook_create(partner=partner, url=PUBLIC)
    changed = client.patch(f"{URL}{webhook.id}/", {"url": url}, format="json")
    assert changed.status_code == 400 and changed.json() == {"url": [message]}
    webhook.refresh_from_db()
    assert webhook.url == PUBLIC


def test_without_a_usable_key_it_is_a_401(partner, key_client, api):
    webhook = services.webhook_create(partner=partner, url=PUBLIC)
    revoked = key_client(partner)
    PartnerKey.objects.filter(partner=partner).update(revoked=True)
    expired = key_client(partner, expiry_date=timezone.now() - timedelta(minutes=1))
    wrong = key_client(partner)
    wrong.credentials(HTTP_X_API_KEY="abcdefgh.not-a-real-key")
    for client in (api, revoked, expired, wrong):
        for response in (client.get(URL), client.get(f"{URL}{webhook.id}/"), client.post(URL, {"url": PUBLIC})):
            assert response.status_code == 401, response.content
            assert response["WWW-Authenticate"] == "Api-Key"
    assert Webhook.objects.count() == 1


def test_a_token_of_a_user_who_is_not_staff_is_a_403(make_user, client_for):
    response = client_for(make_user()).get(URL)
    assert response.status_code == 403
    assert response.json()["detail"] == "Send your partner API key (X-API-Key), or a staff token."


def test_another_partner_can_neither_see_nor_change_a_webhook(partner, make_partner, key_client, receiver):
    webhook = services.webhook_create(partner=partner, url=receiver.url)
    other = key_client(make_partner())
    assert other.get(URL).json()["results"] == []
    path = f"{URL}{webhook.id}/"
    answers = [
        other.get(path),
        other.patch(path, {"url": PUBLIC, "active": False}, format="json"),
        other.delete(path),
        other.post(f"{path}test/"),
        other.get(f"{path}deliveries/"),
    ]
    assert [a.status_code for a in answers] == [404] * 5
    webhook.refresh_from_db()
    assert (webhook.url, webhook.active) == (receiver.url, True)
    assert receiver.requests == [] and not WebhookDelivery.objects.exists()


def test_a_partner_cannot_register_a_webhook_for_another_partner(partner, make_partner, key_client):
    other = make_partner()
    created = key_client(partner).post(URL, {"url": PUBLIC, "partner": other.id}, format="json")
    assert created.status_code == 201 and created.json()["partner"] == partner.id
    assert not Webhook.objects.filter(partner=other).exists()


def test_staff_see_and_manage_every_partners_webhooks(partner, make_partner, make_user, client_for):
    other = make_partner()
    mine = services.webhook_create(partner=partner, url=PUBLIC)
    theirs = services.webhook_create(partner=other, url=PUBLIC)
    staff = client_for(make_user(staff=True))
    assert [w["id"] for w in staff.get(URL).json()["results"]] == [mine.id, theirs.id]
    assert [w["id"] for w in staff.get(URL, {"partner": other.id}).json()["results"]] == [theirs.id]
    assert staff.patch(f"{URL}{theirs.id}/", {"active": False}, format="json").json()["active"] is False
    assert staff.post(URL, {"url": PUBLIC}, format="json").json() == {"partner": [PARTNER_REQUIRED]}
    created = staff.post(URL, {"url": PUBLIC, "partner": other.id}, format="json")
    assert created.status_code == 201 and created.json()["partner"] == other.id and created.json()["secret"]
    moved = staff.patch(f"{URL}{theirs.id}/", {"partner": partner.id}, format="json")
    assert moved.status_code == 400
    assert staff.delete(f"{URL}{mine.id}/").status_code == 204
    assert set(Webhook.objects.values_list("partner_id", flat=True)) == {other.id}


def test_a_partner_has_at_most_the_configured_number_of_webhooks(partner, key_client, settings):
    settings.WEBHOOKS_PER_PARTNER = 2
    client = key_client(partner)
    assert [client.post(URL, {"url": PUBLIC}, format="json").status_code for _ in range(2)] == [201, 201]
    refused = client.post(URL, {"url": PUBLIC}, format="json")
    assert refused.status_code == 403
    assert refused.json() == {
        "detail": "Your account may hold at most 2 webhooks; this change would make it 3.",
        "code": "quota_exceeded",
        "quota": "webhooks",
        "limit": 2,
    }
    assert Webhook.objects.filter(partner=partner).count() == 2


def test_pausing_and_re_enabling_a_disabled_webhook_resets_its_failures(partner, key_client):
    client = key_client(partner)
    webhook = services.webhook_create(partner=partner, url=PUBLIC)
    paused = client.patch(f"{URL}{webhook.id}/", {"active": False}, format="json").json()
    assert (paused["active"], paused["disabled_reason"]) == (False, services.PAUSED)
    Webhook.objects.filter(pk=webhook.pk).update(
        consecutive_failures=33,
        last_error="HTTP 503",
        retry_at=timezone.now() + timedelta(hours=1),
        retry_task_id="t",
        disabled_reason="Disabled after 33 consecutive failed deliveries; last: HTTP 503",
    )
    enabled = client.patch(f"{URL}{webhook.id}/", {"active": True}, format="json").json()
    assert (enabled["active"], enabled["consecutive_failures"], enabled["retry_at"]) == (True, 0, None)
    assert (enabled["disabled_at"], enabled["disabled_reason"]) == (None, "")
    assert enabled["last_error"] == "HTTP 503"  # history stays visible until the next attempt
    webhook.refresh_from_db()
    assert (webhook.consecutive_failures, webhook.retry_task_id, webhook.cursor) == (0, "", webhook.cursor)


def test_ping_answers_202_at_once_and_the_worker_records_the_result(
    partner, key_client, django_capture_on_commit_callbacks
):
    client = key_client(partner)
    with Receiver([500], delay=0.5) as receiver:
        webhook = services.webhook_create(partner=partner, url=receiver.url)
        with django_capture_on_commit_callbacks() as queued:
            answer = client.post(f"{URL}{webhook.id}/test/")
        assert answer.status_code == 202, answer.content
        assert receiver.requests == []  # the request did not wait for the receiver: nothing was sent yet
        body = answer.json()
        location = f"http://testserver{URL}{webhook.id}/deliveries/{body['delivery_id']}/"
        assert answer["Location"] == body["url"] == location
        assert (body["kind"], body["status"], body["ok"], body["status_code"], body["duration_ms"]) == (
            "ping",
            "queued",
            False,
            None,
            None,
        )
        assert len(queued) == 1  # the task is queued once the delivery is committed

        again = client.post(f"{URL}{webhook.id}/test/")  # while one waits: that one, nothing more queued
        assert (again.status_code, again.json()["delivery_id"]) == (202, body["delivery_id"])

        queued[0]()  # the worker runs it (eager)
        failed = client.get(body["url"]).json()
        with django_capture_on_commit_callbacks(execute=True):
            second = client.post(f"{URL}{webhook.id}/test/").json()
        answered = client.get(second["url"]).json()

    assert second["delivery_id"] != body["delivery_id"]
    assert (failed["status"], failed["ok"], failed["status_code"]) == ("failed", False, 500)
    assert failed["error"] == "HTTP 500: receiver says no" and failed["duration_ms"] >= 500
    assert (answered["status"], answered["ok"], answered["status_code"], answered["error"]) == (
        "succeeded",
        True,
        200,
        "",
    )
    assert len(receiver.requests) == 2
    ping = receiver.requests[1]
    cursor = f"{webhook.cursor_xid}-{webhook.cursor_id}"
    assert ping.json == {"type": "ping", "webhook": webhook.id, "changes": [], "cursor": cursor}
    assert ping.headers["X-Webhook-Event"] == "ping"
    assert ping.headers["X-Webhook-Delivery"] == answered["delivery_id"]
    assert signature_valid(webhook.secret, ping)
    webhook.refresh_from_db()
    assert (webhook.consecutive_failures, webhook.last_attempt_at) == (0, None)  # a ping is no delivery

    deliveries = client.get(f"{URL}{webhook.id}/deliveries/").json()
    assert [(d["kind"], d["status"], d["status_code"]) for d in deliveries] == [
        ("ping", "succeeded", 200),
        ("ping", "failed", 500),
    ]


def test_a_ping_that_looks_lost_is_given_up_and_a_new_one_queued(partner, key_client):
    client = key_client(partner)
    webhook = services.webhook_create(partner=partner, url=PUBLIC)
    lost = client.post(f"{URL}{webhook.id}/test/").json()  # never run: on-commit callbacks are not run here
    WebhookDelivery.objects.filter(delivery_id=lost["delivery_id"]).update(
        started_at=timezone.now() - timedelta(seconds=services.REQUEUE_AFTER_SECONDS + 1)
    )
    fresh = client.post(f"{URL}{webhook.id}/test/").json()
    assert fresh["delivery_id"] != lost["delivery_id"] and fresh["status"] == "queued"
    given_up = client.get(lost["url"]).json()
    assert (given_up["status"], given_up["error"]) == ("failed", services.PING_LOST)


@pytest.mark.django_db(transaction=True)  # the task is queued on commit, inside the request
def test_a_ping_that_cannot_be_queued_is_a_503_naming_the_broker(partner, key_client, monkeypatch):
    class BrokerDown:
        def __init__(self, *args, **kwargs):
            pass

        def delay(self):
            raise kombu.exceptions.OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(services, "signature", BrokerDown)
    client = key_client(partner)
    webhook = services.webhook_create(partner=partner, url=PUBLIC)
    answer = client.post(f"{URL}{webhook.id}/test/")
    assert answer.status_code == 503 and answer["Retry-After"] == "5"
    body = answer.json()
    assert (body["code"], body["service"], body["detail"]) == ("queue_unavailable", "redis", services.PING_NOT_QUEUED)
    delivery = WebhookDelivery.objects.get(delivery_id=body["delivery_id"])
    assert (delivery.status, delivery.error) == ("failed", services.PING_NOT_QUEUED)


def test_a_delivery_is_found_by_its_id_only_under_its_own_webhook(partner, key_client):
    client = key_client(partner)
    webhook = services.webhook_create(partner=partner, url=PUBLIC)
    other = services.webhook_create(partner=partner, url=PUBLIC)
    ping = client.post(f"{URL}{webhook.id}/test/").json()
    assert client.get(ping["url"]).json()["delivery_id"] == ping["delivery_id"]
    elsewhere = client.get(f"{URL}{other.id}/deliveries/{ping['delivery_id']}/")
    assert elsewhere.status_code == 404 and elsewhere.json() == {"detail": NO_SUCH_DELIVERY}
    assert client.get(f"{URL}{webhook.id}/deliveries/{uuid.uuid4()}/").status_code == 404
    assert client.get(f"{URL}{webhook.id}/deliveries/------------------------------------/").status_code == 404


def test_listing_costs_the_same_queries_for_many_webhooks(partner, key_client, settings):
    settings.WEBHOOKS_PER_PARTNER = 10
    client = key_client(partner)
    services.webhook_create(partner=partner, url=PUBLIC)
    client.get(URL)
    with CaptureQueriesContext(connection) as one:
        assert len(client.get(URL).json()["results"]) == 1
    for _ in range(4):
        services.webhook_create(partner=partner, url=PUBLIC)
    with CaptureQueriesContext(connection) as five:
        assert len(client.get(URL).json()["results"]) == 5
    assert len(five.captured_queries) == len(one.captured_queries) <= 3  # the key with its partner, count, page


def test_the_schema_documents_the_webhook_endpoints_with_examples(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    paths = schema["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/webhooks/"])
    assert {"get", "patch", "delete"} <= set(paths["/api/v1/webhooks/{id}/"])
    create = paths["/api/v1/webhooks/"]["post"]
    assert "X-Webhook-Signature" in create["description"]
    assert "Created" in create["responses"]["201"]["content"]["application/json"]["examples"]
    assert {"ApiKeyAuth": []} in create["security"]
    assert "test" in paths["/api/v1/webhooks/{id}/test/"]["post"]["operationId"]
    assert "/api/v1/webhooks/{id}/deliveries/" in paths
    assert "202" in paths["/api/v1/webhooks/{id}/test/"]["post"]["responses"]
    assert "/api/v1/webhooks/{id}/deliveries/{delivery_id}/" in paths
