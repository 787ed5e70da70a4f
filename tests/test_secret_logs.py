"""Nothing secret reaches the log: database errors on register, login and profile, on gunicorn.

The database is made to fail for real: a trigger that raises, a check constraint the
row breaks, and a lock that runs statements into DB_STATEMENT_TIMEOUT. The server's log
(access and error lines) must then hold no password, token, email, phone or hash.
"""

import hashlib

import psycopg2
import pytest
import requests

from tests.servers import GunicornServer

pytestmark = pytest.mark.process

PASSWORD = "a secret password 1"
NEW_PASSWORD = "a secret password 2"
EMAIL = "secret-owner@example.com"
OTHER_EMAIL = "secret-newcomer@example.com"
PHONE = "+31 20 555 0199"
FORCED_FAILURE = """
CREATE FUNCTION forced_failure() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'forced failure'; END $$;
CREATE TRIGGER users_fail BEFORE INSERT OR UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION forced_failure();
CREATE TRIGGER tokens_fail BEFORE INSERT ON api_tokens
    FOR EACH ROW EXECUTE FUNCTION forced_failure();
"""
UNDO_FORCED_FAILURE = """
DROP TRIGGER users_fail ON users; DROP TRIGGER tokens_fail ON api_tokens;
DROP FUNCTION forced_failure();
"""
NO_DUTCH_PHONES = "ALTER TABLE users ADD CONSTRAINT no_dutch_phones CHECK (phone NOT LIKE '+31%')"


def execute(database_url: str, sql: str) -> None:
    """Run sql on its own connection and commit."""
    with psycopg2.connect(database_url) as connection, connection.cursor() as cursor:
        cursor.execute(sql)


class Client:
    """The calls that carry secrets, against one server."""

    def __init__(self, server: GunicornServer):
        self.url = server.url + "/api"

    def register(self, email: str, phone: str | None = None) -> requests.Response:
        """Sign up with PASSWORD."""
        body = {"email": email, "password": PASSWORD, "name": "Secret", "phone": phone}
        return requests.post(self.url + "/auth/register", json=body, timeout=30)

    def login(self, email: str) -> requests.Response:
        """Sign in with PASSWORD."""
        body = {"email": email, "password": PASSWORD}
        return requests.post(self.url + "/auth/login", json=body, timeout=30)

    def change_profile(self, token: str) -> requests.Response:
        """Set the phone and change the password."""
        changes = {"phone": PHONE, "current_password": PASSWORD, "new_password": NEW_PASSWORD}
        headers = {"Authorization": f"Bearer {token}"}
        return requests.patch(self.url + "/user/profile", json=changes, headers=headers, timeout=30)

    def every_call(self, token: str) -> list[int]:
        """Register, sign in and change the profile; return the statuses."""
        calls = (self.register(OTHER_EMAIL, PHONE), self.login(EMAIL), self.change_profile(token))
        return [response.status_code for response in calls]


def while_users_are_locked(database_url: str, work):
    """Run work while another transaction holds an exclusive lock on users; return its result."""
    connection = psycopg2.connect(database_url)
    try:
        connection.cursor().execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        return work()
    finally:
        connection.rollback()
        connection.close()


def secrets_in(log: str, token: str) -> list[str]:
    """Which secrets appear in log."""
    secrets = {
        "password": PASSWORD,
        "new password": NEW_PASSWORD,
        "token": token,
        "token hash": hashlib.sha256(token.encode()).hexdigest(),
        "email": EMAIL,
        "new email": OTHER_EMAIL,
        "phone": PHONE,
        "password hash": "scrypt:",
    }
    return [name for name, secret in secrets.items() if secret in log]


def test_database_errors_leave_no_secret_in_the_log(server_database_url):
    env = {"DATABASE_URL": server_database_url, "DB_STATEMENT_TIMEOUT": "500"}
    with GunicornServer(env) as server:
        client = Client(server)
        assert client.register(EMAIL).status_code == 201
        token = client.login(EMAIL).json()["token"]

        execute(server_database_url, FORCED_FAILURE)
        failed = client.every_call(token)
        execute(server_database_url, UNDO_FORCED_FAILURE)
        execute(server_database_url, NO_DUTCH_PHONES)
        violated = [client.register(OTHER_EMAIL, PHONE).status_code]
        violated.append(client.change_profile(token).status_code)
        timed_out = while_users_are_locked(server_database_url, lambda: client.every_call(token))
        log = server.output()

    assert failed == [500, 500, 500]
    assert violated == [422, 422]
    assert timed_out == [503, 503, 503]
    assert "forced failure" in log and "statement timeout" in log  # The errors were logged.
    assert secrets_in(log, token) == []
