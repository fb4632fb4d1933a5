"""Registration and token exchange."""

import pytest
from django.contrib.auth import get_user_model

from accounts.serializers import EMAIL_TAKEN

REGISTER = "/api/v1/auth/register/"
TOKEN = "/api/v1/auth/token/"
CREDENTIALS = {"username": "acme", "email": "ops@acme.example", "password": "a long passphrase 42"}

User = get_user_model()


def test_register_returns_a_working_token(api, db):
    response = api.post(REGISTER, CREDENTIALS, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["username"], body["email"]) == ("acme", "ops@acme.example")
    assert "password" not in body
    api.credentials(HTTP_AUTHORIZATION=f"Token {body['token']}")
    assert api.get("/api/v1/providers/").status_code == 200


def test_token_endpoint_returns_the_same_token(api, db):
    registered = api.post(REGISTER, CREDENTIALS, format="json").json()["token"]
    response = api.post(TOKEN, {"username": "acme", "password": CREDENTIALS["password"]}, format="json")
    assert response.status_code == 200
    assert response.json() == {"token": registered}


def test_wrong_password_gets_no_token(api, db):
    api.post(REGISTER, CREDENTIALS, format="json")
    response = api.post(TOKEN, {"username": "acme", "password": "wrong"}, format="json")
    assert response.status_code == 400
    assert "token" not in response.json()


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


def test_username_and_email_are_taken_once(api, db):
    api.post(REGISTER, CREDENTIALS, format="json")
    again = api.post(REGISTER, CREDENTIALS, format="json")
    assert again.status_code == 400
    assert "username" in again.json()

    same_email = api.post(REGISTER, {**CREDENTIALS, "username": "other", "email": "OPS@ACME.EXAMPLE"}, format="json")
    assert same_email.status_code == 400
    assert same_email.json()["email"] == [EMAIL_TAKEN]
    assert User.objects.count() == 1


def test_a_body_nested_too_deeply_is_a_400(api, db):
    body = "[" * 100_000 + "]" * 100_000
    response = api.generic("POST", "/api/v1/auth/token/", body, content_type="application/json")
    assert response.status_code == 400
    assert "nested too deeply" in response.json()["detail"]
