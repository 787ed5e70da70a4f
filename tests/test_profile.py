"""GET and PATCH /api/user/profile: the caller's own profile."""

import sqlalchemy as sa

from app.extensions import db
from app.models import User
from tests.conftest import PASSWORD

PROFILE = "/api/user/profile"


def test_get_shows_the_callers_profile_only(client, customer):
    response = client.get(PROFILE, headers=customer.headers)
    assert response.status_code == 200
    assert response.json["id"] == customer.id
    assert set(response.json) == {"id", "email", "name", "phone", "role", "created_at"}


def test_patch_changes_name_and_phone(client, customer):
    changes = {"name": "Grace", "phone": "+44 20 7946 0000"}
    response = client.patch(PROFILE, json=changes, headers=customer.headers)
    assert response.status_code == 200
    assert response.json["name"] == "Grace"
    assert client.get(PROFILE, headers=customer.headers).json["phone"] == "+44 20 7946 0000"


def test_patch_clears_the_phone_with_null(client, customer):
    client.patch(PROFILE, json={"phone": "555 0100"}, headers=customer.headers)
    response = client.patch(PROFILE, json={"phone": None}, headers=customer.headers)
    assert response.json["phone"] is None


def test_patch_validates_fields(client, customer):
    response = client.patch(
        PROFILE, json={"name": "", "phone": "call me"}, headers=customer.headers
    )
    assert response.status_code == 422
    assert set(response.json["error"]["fields"]) == {"name", "phone"}


def test_patch_changes_the_password_given_the_current_one(client, auth, customer):
    changes = {"current_password": PASSWORD, "new_password": "a brand new secret"}
    assert client.patch(PROFILE, json=changes, headers=customer.headers).status_code == 200
    assert auth.login(customer.email, PASSWORD).status_code == 401
    assert auth.login(customer.email, "a brand new secret").status_code == 200


def test_password_change_revokes_other_tokens_but_keeps_this_one(client, auth, customer):
    other = {"Authorization": "Bearer " + auth.login(customer.email, PASSWORD).json["token"]}
    changes = {"current_password": PASSWORD, "new_password": "a brand new secret"}
    client.patch(PROFILE, json=changes, headers=customer.headers)
    assert client.get(PROFILE, headers=other).status_code == 401
    assert client.get(PROFILE, headers=customer.headers).status_code == 200


def test_password_change_with_a_wrong_current_password_is_422(client, auth, customer):
    changes = {"current_password": "not it at all", "new_password": "a brand new secret"}
    response = client.patch(PROFILE, json=changes, headers=customer.headers)
    assert response.status_code == 422
    assert response.json["error"]["fields"] == {"current_password": ["Is not correct."]}
    assert auth.login(customer.email, PASSWORD).status_code == 200


def test_new_password_needs_the_current_one(client, customer):
    response = client.patch(PROFILE, json={"new_password": "x" * 12}, headers=customer.headers)
    assert response.status_code == 422
    assert set(response.json["error"]["fields"]) == {"current_password"}


def test_patch_cannot_change_role_or_email(app, client, customer):
    for field, value in (("role", "admin"), ("email", "boss@example.com"), ("id", 1)):
        response = client.patch(PROFILE, json={field: value}, headers=customer.headers)
        assert response.status_code == 422
        assert response.json["error"]["fields"] == {field: ["Unknown field."]}
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.id == customer.id))
        assert (user.role, user.email) == ("customer", customer.email)
