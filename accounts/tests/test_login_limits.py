"""Limits on sign-in attempts (accounts.security), the same on the API's token endpoint, the portal and the admin:
an address guessing a password waits, longer each time, and does not delay anyone else; the limits fail closed."""

import pytest
from django.test import Client

from accounts import security
from accounts.security import LOGIN_DELAYED, LOGIN_LIMITS_UNAVAILABLE
from testing.net import closed_port

TOKEN = "/api/v1/auth/token/"
REGISTER = "/api/v1/auth/register/"
PASSWORD = "a long test passphrase"  # conftest's make_user
ATTACKER = "203.0.113.66"
OFFICE = "198.51.100.7"


class Clock:
    """Stands in for the `time` module in accounts.security: tests move time on instead of sleeping."""

    def __init__(self):
        self.now = 1_800_000_000.0

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(security, "time", fake)
    return fake


@pytest.fixture
def staff(make_user):
    return make_user(staff=True, username="staff")


def token(api, username, password, address):
    return api.post(TOKEN, {"username": username, "password": password}, format="json", REMOTE_ADDR=address)


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_an_address_guessing_a_staff_password_waits_and_staff_elsewhere_still_sign_in(api, staff, settings):
    codes = [token(api, "staff", f"guess {n}", ATTACKER).status_code for n in range(20)]
    before = settings.LOGIN_FAILURES_BEFORE_BACKOFF
    assert codes == [400] * before + [429] * (20 - before)
    delayed = token(api, "staff", PASSWORD, ATTACKER)  # even the right password waits, from there
    assert delayed.status_code == 429
    assert int(delayed["Retry-After"]) >= 1
    assert delayed.json()["detail"].startswith(LOGIN_DELAYED)

    assert token(api, "staff", PASSWORD, OFFICE).status_code == 201
    portal = Client(REMOTE_ADDR=OFFICE)
    assert portal.post("/portal/login/", {"username": "staff", "password": PASSWORD}).status_code == 302
    assert signed_in(portal)
    admin = Client(REMOTE_ADDR=OFFICE)
    response = admin.post("/admin/login/?next=/admin/", {"username": "staff", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert signed_in(admin)


def test_the_wait_doubles_with_each_attempt_up_to_the_longest(api, staff, settings, clock):
    settings.LOGIN_FAILURES_BEFORE_BACKOFF = 1
    settings.LOGIN_BACKOFF_MAX_SECONDS = 4
    waits = []
    for _ in range(5):
        assert token(api, "staff", "wrong", ATTACKER).status_code == 400
        delayed = token(api, "staff", "wrong", ATTACKER)
        assert delayed.status_code == 429
        waits.append(int(delayed["Retry-After"]))
        clock.now += waits[-1] - 0.5
        assert token(api, "staff", "wrong", ATTACKER).status_code == 429  # not yet
        clock.now += 0.5
    assert waits == [1, 2, 4, 4, 4]


def test_the_portal_and_the_admin_say_how_long_to_wait_and_share_the_apis_counters(api, staff, settings, clock):
    settings.LOGIN_FAILURES_BEFORE_BACKOFF = 2
    portal = Client(REMOTE_ADDR=ATTACKER)
    for _ in range(2):
        refused = portal.post("/portal/login/", {"username": "staff", "password": "wrong"})
        assert "Please enter a correct username and password" in refused.content.decode()
    delayed = portal.post("/portal/login/", {"username": "staff", "password": PASSWORD})
    assert "Too many failed sign-in attempts: please wait 1 second before trying again." in delayed.content.decode()
    assert not signed_in(portal)
    admin = Client(REMOTE_ADDR=ATTACKER)
    delayed = admin.post("/admin/login/?next=/admin/", {"username": "staff", "password": PASSWORD})
    assert delayed.status_code == 200
    assert "please wait 1 second" in delayed.content.decode()
    assert not signed_in(admin)
    assert token(api, "staff", PASSWORD, ATTACKER).status_code == 429

    clock.now += 1
    assert admin.post("/admin/login/?next=/admin/", {"username": "staff", "password": PASSWORD}).status_code == 302


def test_signing_in_forgets_the_failures_of_that_address(api, staff, settings):
    settings.LOGIN_FAILURES_BEFORE_BACKOFF = 3
    for _ in range(2):
        assert token(api, "staff", "typo", OFFICE).status_code == 400
    assert token(api, "staff", PASSWORD, OFFICE).status_code == 201
    assert [token(api, "staff", "typo", OFFICE).status_code for _ in range(4)] == [400, 400, 400, 429]


def test_one_address_trying_many_usernames_waits(api, make_user, settings):
    settings.LOGIN_FAILURES_PER_ADDRESS = 3
    user = make_user()
    for n in range(3):
        assert token(api, f"guess{n}", "wrong", ATTACKER).status_code == 400
    assert token(api, user.username, PASSWORD, ATTACKER).status_code == 429
    assert token(api, user.username, PASSWORD, OFFICE).status_code == 201


def test_signing_in_does_not_use_up_the_addresss_allowance(api, make_user, settings):
    """Many people behind one address (an office, a NAT) sign in all day: only failures count."""
    settings.LOGIN_FAILURES_PER_ADDRESS = 3
    users = [make_user() for _ in range(5)]
    assert [token(api, u.username, PASSWORD, OFFICE).status_code for u in users] == [201] * 5


def test_a_guess_spread_over_many_addresses_is_slowed_but_not_for_an_address_that_signed_in_before(
    api, staff, settings
):
    settings.LOGIN_FAILURES_PER_USERNAME = 3
    settings.LOGIN_USERNAME_MAX_WAIT = 5
    assert token(api, "staff", PASSWORD, OFFICE).status_code == 201
    for n in range(3):
        assert token(api, "staff", "wrong", f"192.0.2.{n}").status_code == 400
    slowed = token(api, "staff", PASSWORD, "192.0.2.200")
    assert slowed.status_code == 429
    assert 1 <= int(slowed["Retry-After"]) <= 5
    assert token(api, "staff", PASSWORD, OFFICE).status_code == 201


def test_the_addresses_of_one_ipv6_subscriber_count_together(api, staff, settings):
    settings.LOGIN_FAILURES_BEFORE_BACKOFF = 2
    for n in range(2):
        assert token(api, "staff", "wrong", f"2001:db8:1:2::{n + 1}").status_code == 400
    assert token(api, "staff", PASSWORD, "2001:db8:1:2::99").status_code == 429
    assert token(api, "staff", PASSWORD, "2001:db8:1:3::1").status_code == 201


@pytest.fixture
def cache_unreachable(settings):
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": f"redis://127.0.0.1:{closed_port()}/0"}}


def test_without_redis_the_api_refuses_sign_in_and_registration_with_a_503_naming_it(
    api, staff, django_user_model, cache_unreachable
):
    expected = {"detail": LOGIN_LIMITS_UNAVAILABLE, "code": "login_limits_unavailable", "service": "redis"}
    for _ in range(3):
        refused = token(api, "staff", PASSWORD, OFFICE)
        assert (refused.status_code, refused.json()) == (503, expected)
        assert int(refused["Retry-After"]) > 0
    registration = {"username": "newcomer", "email": "new@example.com", "password": "a long passphrase 42"}
    refused = api.post(REGISTER, registration, format="json")
    assert (refused.status_code, refused.json()) == (503, expected)
    assert not django_user_model.objects.filter(username="newcomer").exists()


@pytest.mark.parametrize("path", ["/portal/login/", "/admin/login/?next=/admin/"])
def test_without_redis_the_sign_in_forms_say_so_and_sign_no_one_in(client, staff, cache_unreachable, path):
    response = client.post(path, {"username": "staff", "password": PASSWORD})
    assert response.status_code == 200
    assert LOGIN_LIMITS_UNAVAILABLE in response.content.decode()
    assert not signed_in(client)
