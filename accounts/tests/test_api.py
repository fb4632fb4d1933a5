"""Registration and API tokens (several, hashed, expiring, revocable). Limits on sign-in attempts: test_login_limits."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.throttling import ScopedRateThrottle

from accounts.models import ApiToken

REGISTER = "/api/v1/auth/register/"
TOKEN = "/api/v1/auth/token/"
TOKENS = "/api/v1/auth/tokens/"
CREDENTIALS = {"username": "acme", "email": "ops@acme.example", "password": "a long passphrase 42"}
LOGIN = {"username": "acme", "password": CREDENTIALS["password"]}

User = get_user_model()


def test_register_returns_a_working_token(api, db):
    response = api.post(REGISTER, CREDENTIALS, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["username"], body["email"]) == ("acme", "ops@acme.example")
    assert "password" not in body
    api.credentials(HTTP_AUTHORIZATION=f"Token {body['token']}")
    assert api.get("/api/v1/providers/").status_code == 200


def test_each_login_creates_another_working_token_stored_only_as_a_digest(api, db):
    registered = api.post(REGISTER, CREDENTIALS, format="json").json()["token"]
    response = api.post(TOKEN, {**LOGIN, "name": "booking-site"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["token"] != registered and body["name"] == "booking-site" and body["expiry"]
    assert body["token"].startswith(body["id"])
    assert not ApiToken.objects.filter(digest__contains=body["token"]).exists()
    assert not ApiToken.objects.filter(token_key=body["token"]).exists()  # only its first characters are kept
    for secret in (registered, body["token"]):
        api.credentials(HTTP_AUTHORIZATION=f"Token {secret}")
        assert api.get("/api/v1/providers/").status_code == 200
    assert [t["name"] for t in api.get(TOKENS).json()] == ["registration", "booking-site"]
    assert all("token" not in t for t in api.get(TOKENS).json())


def test_a_revoked_token_gets_401_and_the_others_keep_working(api, db):
    first = api.post(REGISTER, CREDENTIALS, format="json").json()["token"]
    second = api.post(TOKEN, LOGIN, format="json").json()
    api.credentials(HTTP_AUTHORIZATION=f"Token {first}")
    assert api.delete(f"{TOKENS}{second['id']}/").status_code == 204
    api.credentials(HTTP_AUTHORIZATION=f"Token {second['token']}")
    assert api.get("/api/v1/providers/").status_code == 401
    api.credentials(HTTP_AUTHORIZATION=f"Token {first}")
    assert api.get("/api/v1/providers/").status_code == 200


def test_an_expired_token_gets_401(api, db):
    api.post(REGISTER, CREDENTIALS, format="json")
    token = api.post(TOKEN, {**LOGIN, "expires_in_days": 1}, format="json").json()
    ApiToken.objects.filter(token_key=token["id"]).update(expiry=timezone.now() - timedelta(seconds=1))
    api.credentials(HTTP_AUTHORIZATION=f"Token {token['token']}")
    assert api.get("/api/v1/providers/").status_code == 401


def test_a_token_lifetime_beyond_the_maximum_is_refused(api, db, settings):
    api.post(REGISTER, CREDENTIALS, format="json")
    response = api.post(TOKEN, {**LOGIN, "expires_in_days": settings.API_TOKEN_MAX_TTL_DAYS + 1}, format="json")
    assert response.status_code == 400 and "expires_in_days" in response.json()


def test_users_cannot_see_or_revoke_each_others_tokens(api, db, client_for, make_user):
    api.post(REGISTER, CREDENTIALS, format="json")
    token = api.post(TOKEN, LOGIN, format="json").json()
    other = client_for(make_user())
    assert token["id"] not in [t["id"] for t in other.get(TOKENS).json()]
    assert other.delete(f"{TOKENS}{token['id']}/").status_code == 404
    assert ApiToken.objects.filter(token_key=token["id"]).exists()


def test_wrong_password_gets_no_token(api, db):
    api.post(REGISTER, CREDENTIALS, format="json")
    response = api.post(TOKEN, {"username": "acme", "password": "wrong"}, format="json")
    assert response.status_code == 400
    assert "token" not in response.json()


def test_a_forged_x_forwarded_for_does_not_dodge_the_throttle(api, db, monkeypatch):
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"auth": "3/minute"})
    codes = [
        api.post(
            TOKEN, {"username": "x", "password": "y"}, format="json", HTTP_X_FORWARDED_FOR=f"203.0.113.{n}"
        ).status_code
        for n in range(5)
    ]
    assert codes[:3] == [400, 400, 400] and codes[3:] == [429, 429]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"password": "123"}, "password"),
        ({"password": "password"}, "password"),
        ({"password": "acme"}, "password"),
        ({"email": "not-an-email"}, "email"),
        ({"username": ""}, "username"),
        ({"username": "has spaces"}, "username"),
    ],
)
def test_bad_registration_is_a_400_and_creates_nobody(api, db, change, field):
    response = api.post(REGISTER, {**CREDENTIALS, **change}, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not User.objects.exists()


def test_a_username_is_taken_once(api, db):
    api.post(REGISTER, CREDENTIALS, format="json")
    again = api.post(REGISTER, CREDENTIALS, format="json")
    assert again.status_code == 400
    assert "username" in again.json()
    assert User.objects.count() == 1


def test_registration_does_not_reveal_whether_an_email_is_in_use(api, db):
    api.post(REGISTER, CREDENTIALS, format="json")
    same_email = api.post(REGISTER, {**CREDENTIALS, "username": "other", "email": "OPS@ACME.EXAMPLE"}, format="json")
    assert same_email.status_code == 201


def test_a_body_nested_too_deeply_is_a_400(api, db):
    body = "[" * 100_000 + "]" * 100_000
    response = api.generic("POST", "/api/v1/auth/token/", body, content_type="application/json")
    assert response.status_code == 400
    assert "nested too deeply" in response.json()["detail"]
