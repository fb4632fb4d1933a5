"""The admin shows how each webhook is doing and its recent deliveries; staff re-enable and send at once."""

import pytest
from django.urls import reverse

from testing.feed import feed_settled
from webhooks import services
from webhooks.models import Webhook
from webhooks.tests.helpers import Receiver

pytestmark = pytest.mark.django_db(transaction=True)  # "send now" reads the feed, which lists committed work


@pytest.fixture
def admin_client_logged_in(client, make_user):
    user = make_user(staff=True)
    user.is_superuser = True
    user.save()
    client.force_login(user)
    return client


def test_failures_show_in_the_list_and_on_the_page_and_send_now_delivers(
    admin_client_logged_in, make_webhook, change_areas
):
    with Receiver([500]) as receiver:
        webhook = make_webhook(receiver.url)
        change_areas(1)
        feed_settled()
        services.webhook_deliver(webhook_id=webhook.id, task_id="t1")  # fails; a retry is due in 10 s

        listing = admin_client_logged_in.get(reverse("admin:webhooks_webhook_changelist")).content.decode()
        assert receiver.url.replace("&", "&amp;") in listing and "HTTP 500: receiver says no" in listing
        page = admin_client_logged_in.get(reverse("admin:webhooks_webhook_change", args=[webhook.id])).content.decode()
        assert "Recent deliveries" in page and "HTTP 500: receiver says no" in page
        assert webhook.secret not in page

        response = admin_client_logged_in.post(
            reverse("admin:webhooks_webhook_changelist"), {"action": "send_now", "_selected_action": [webhook.id]}
        )
        assert response.status_code == 302
    assert len(receiver.requests) == 2
    webhook.refresh_from_db()
    assert (webhook.consecutive_failures, webhook.last_status_code, webhook.retry_at) == (0, 200, None)
    deliveries = admin_client_logged_in.get(
        reverse("admin:webhooks_webhookdelivery_changelist"), {"webhook__id__exact": webhook.id}
    )
    assert deliveries.status_code == 200 and deliveries.content.decode().count("receiver says no") == 1


def test_enable_action_resets_a_disabled_webhook(admin_client_logged_in, make_webhook):
    webhook = make_webhook("https://hooks.partner.example/areas")
    Webhook.objects.filter(pk=webhook.pk).update(active=False, consecutive_failures=33, disabled_reason="Disabled")
    response = admin_client_logged_in.post(
        reverse("admin:webhooks_webhook_changelist"), {"action": "enable", "_selected_action": [webhook.id]}
    )
    assert response.status_code == 302
    webhook.refresh_from_db()
    assert (webhook.active, webhook.consecutive_failures, webhook.disabled_reason) == (True, 0, "")


def test_saving_the_form_goes_through_the_url_check(admin_client_logged_in, make_webhook, settings):
    webhook = make_webhook("https://hooks.partner.example/areas")
    settings.WEBHOOKS_ALLOW_LOCAL = False
    response = admin_client_logged_in.post(
        reverse("admin:webhooks_webhook_change", args=[webhook.id]),
        {"url": "https://10.0.0.1/hook", "description": "", "active": "on"},
    )
    assert response.status_code == 200 and "public address" in response.content.decode()
    webhook.refresh_from_db()
    assert webhook.url == "https://hooks.partner.example/areas"
