"""Register, sign in, sign out; tokens are hashed, expire and are revoked; brute force is slowed."""

import hashlib
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from flask_migrate import upgrade

from app import create_app
from app.config import app_settings
from app.extensions import db
from app.models import ApiToken, User
from tests import pg

NEW_USER = {"email": "Ada@Example.com", "password": "a long password", "name": "Ada"}
PROFILE_FIELDS = {"id", "email", "name", "phone", "role", "created_at"}


def register(client, **overrides):
    """POST /api/auth/register with NEW_USER changed by overrides."""
    return client.post("/api/auth/register", json=NEW_USER | overrides)


def test_register_creates_a_customer_and_shows_no_hash(client):
    response = register(client)
    assert response.status_code == 201
    assert set(response.json) == PROFILE_FIELDS
    assert response.json["role"] == "customer"
    assert response.json["email"] == "ada@example.com"  # Stored as compared: normalised.


def test_register_stores_a_slow_salted_hash(app, client):
    register(client)
    with app.app_context():
        stored = db.session.scalar(sa.select(User.password_hash))
    assert stored.startswith("scrypt:")
    assert NEW_USER["password"] not in stored


def test_register_refuses_a_taken_email_in_any_case(client):
    register(client)
    response = register(client, email="ADA@example.COM")
    assert response.status_code == 409
    assert response.json["error"]["fields"] == {"email": ["Taken."]}


def test_register_validates_fields(client):
    response = register(client, email="not-an-email", password="short", name="")
    assert response.status_code == 422
    assert set(response.json["error"]["fields"]) == {"email", "password", "name"}


def test_register_refuses_a_role(client):
    response = register(client, role="admin")
    assert response.status_code == 422
    assert response.json["error"]["fields"] == {"role": ["Unknown field."]}


def test_login_returns_a_token_that_works(client, auth, customer):
    response = auth.login(customer.email.upper())
    assert response.status_code == 200
    assert set(response.json) == {"token", "expires_at"}
    headers = {"Authorization": f"Bearer {response.json['token']}"}
    assert client.get("/api/user/profile", headers=headers).json["id"] == customer.id


def test_login_token_is_long_random_and_stored_only_as_its_hash(app, auth, customer):
    token = auth.login(customer.email).json["token"]
    assert len(token) >= 43  # 32 random bytes, base64url
    with app.app_context():
        hashes = set(db.session.scalars(sa.select(ApiToken.token_hash)))
    assert hashlib.sha256(token.encode()).hexdigest() in hashes
    assert token not in hashes


def test_login_token_expires_after_token_ttl(app, auth, customer):
    before = datetime.now(UTC)
    expires_at = datetime.fromisoformat(auth.login(customer.email).json["expires_at"])
    ttl = timedelta(seconds=app_settings(app).token_ttl)
    assert before + ttl <= expires_at <= datetime.now(UTC) + ttl
    assert app_settings(app).token_ttl == 7 * 86400


def test_login_with_a_wrong_password_is_401(auth, customer):
    response = auth.login(customer.email, "wrong password")
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"


def test_login_with_an_unknown_email_is_401(auth):
    assert auth.login("nobody@example.com").status_code == 401


def test_login_validates_fields(client):
    response = client.post("/api/auth/login", json={"email": "a@example.com"})
    assert response.status_code == 422
    assert response.json["error"]["fields"] == {"password": ["Missing data for required field."]}


def test_logout_revokes_the_token(client, customer):
    assert client.post("/api/auth/logout", headers=customer.headers).status_code == 204
    assert client.get("/api/user/profile", headers=customer.headers).status_code == 401


def test_logout_leaves_other_tokens_alive(client, auth, customer):
    other = auth.login(customer.email).json["token"]
    client.post("/api/auth/logout", headers=customer.headers)
    headers = {"Authorization": f"Bearer {other}"}
    assert client.get("/api/user/profile", headers=headers).status_code == 200


def test_repeated_failed_logins_for_one_email_answer_429(auth, customer):
    for _ in range(5):
        assert auth.login(customer.email, "wrong password").status_code == 401
    response = auth.login(customer.email)  # Even the right password waits now.
    assert response.status_code == 429
    assert response.json["error"]["code"] == "too_many_requests"
    assert 0 < int(response.headers["Retry-After"]) <= 15 * 60


def test_failed_logins_for_one_email_do_not_block_another(auth, customer, other_customer):
    for _ in range(6):
        auth.login(customer.email, "wrong password")
    assert auth.login(other_customer.email).status_code == 200


def test_successful_logins_do_not_add_up_to_a_lockout(auth, customer):
    for _ in range(8):
        assert auth.login(customer.email).status_code == 200


def test_repeated_failed_logins_from_one_client_answer_429(auth):
    for number in range(60):
        assert auth.login(f"guess{number}@example.com").status_code == 401
    response = auth.login("guess-last@example.com")
    assert response.status_code == 429
    assert "Retry-After" in response.headers


def test_tokens_and_profiles_are_never_cached(client, auth, customer):
    profile = "/api/user/profile"
    responses = [
        auth.login(customer.email),
        client.get(profile, headers=customer.headers),
        client.patch(profile, json={"name": "Grace"}, headers=customer.headers),
        register(client),
    ]
    assert [response.headers.get("Cache-Control") for response in responses] == ["no-store"] * 4


def test_an_email_signs_in_as_it_was_registered_whatever_the_script(client, auth):
    assert register(client, email="İx@Example.test").status_code == 201
    assert auth.login("İx@Example.test", NEW_USER["password"]).status_code == 200
    assert auth.login("İx@example.TEST", NEW_USER["password"]).status_code == 200
    assert register(client, email="İX@example.test").status_code == 409


def test_the_email_migration_normalises_stored_addresses():
    name, url = pg.create_database()
    try:
        app = create_app({"DATABASE_URL": url, "SECRET_KEY": "test"})
        with app.app_context():
            upgrade(revision="947a842066c5")
            with db.engine.begin() as connection:
                connection.execute(
                    sa.text(
                        "INSERT INTO users (email, password_hash, name, role, created_at,"
                        " updated_at) VALUES ('  Ada@Example.COM', 'x', 'Ada', 'customer',"
                        " now(), now())"
                    )
                )
            upgrade()
            assert db.session.scalar(sa.select(User.email)) == "ada@example.com"
            db.session.remove()
            db.engine.dispose()
    finally:
        pg.drop_database(name)
