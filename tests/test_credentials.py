"""What a hostile client does with credentials: race a password change, steal a token."""

import random
import threading
import time
import uuid

import pytest
import requests

from tests.conftest import PASSWORD
from tests.servers import GunicornServer, client_from, overlapping_env

NEW_PASSWORD = "another horse battery"
PROFILE = "/api/user/profile"
RACING_SIGN_INS = 8
ROUNDS = 4


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for token."""
    return {"Authorization": f"Bearer {token}"}


def test_logout_all_revokes_every_token_this_one_too(client, auth, customer):
    other = auth.login(customer.email).json["token"]
    assert client.post("/api/auth/logout-all", headers=customer.headers).status_code == 204
    assert client.get(PROFILE, headers=customer.headers).status_code == 401
    assert client.get(PROFILE, headers=bearer(other)).status_code == 401
    assert auth.login(customer.email).status_code == 200  # Signing in again works.


def test_a_stolen_tokens_guesses_do_not_lock_the_owner_out_of_the_change(client, auth, customer):
    stolen = customer.headers
    for _ in range(5):
        wrong = {"current_password": "a wrong guess", "new_password": NEW_PASSWORD}
        assert client.patch(PROFILE, json=wrong, headers=stolen).status_code == 422
    assert client.patch(PROFILE, json=wrong, headers=stolen).status_code == 429
    owner = bearer(auth.login(customer.email).json["token"])
    change = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    assert client.patch(PROFILE, json=change, headers=owner).status_code == 200
    assert client.get(PROFILE, headers=stolen).status_code == 401  # The change revoked it.


@pytest.fixture(scope="module")
def server(server_database_url):
    """Two workers of four threads: sign-ins and the change really overlap."""
    with GunicornServer(overlapping_env(server_database_url)) as server:
        yield server


def sign_in(server, email: str, address: str) -> requests.Response:
    """POST /api/auth/login on the server with PASSWORD, from a client address of its own.

    Sign-ins are limited per client address (in Redis, shared with the whole suite): each
    round signs in from a loopback address nobody else uses.
    """
    body = {"email": email, "password": PASSWORD}
    return client_from(address).post(server.url + "/api/auth/login", json=body, timeout=30)


def unused_loopback_address() -> str:
    """A random address of 127.0.0.0/8 (all of it is loopback) for one round's sign-ins."""
    return "127." + ".".join(str(random.randint(1, 254)) for _ in range(3))


def tokens_won_while_the_password_changes(server, email: str, address: str) -> list[str]:
    """Sign in with the old password again and again while its owner changes it."""
    owner = bearer(sign_in(server, email, address).json()["token"])
    won: list[str] = []

    def race(delay_s: float) -> None:
        time.sleep(delay_s)
        answer = sign_in(server, email, address)
        if answer.status_code == 200:
            won.append(answer.json()["token"])

    racers = [
        threading.Thread(target=race, args=(0.02 * number,)) for number in range(RACING_SIGN_INS)
    ]
    for racer in racers:
        racer.start()
    change = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    changed = requests.patch(server.url + PROFILE, json=change, headers=owner, timeout=30)
    assert changed.status_code == 200
    for racer in racers:
        racer.join()
    return won


@pytest.mark.process
def test_a_sign_in_racing_a_password_change_does_not_outlive_it(server):
    surviving = []
    for _ in range(ROUNDS):
        email = f"racer-{uuid.uuid4().hex[:8]}@example.com"
        address = unused_loopback_address()
        body = {"email": email, "password": PASSWORD, "name": "Racer"}
        register = client_from(address).post(server.url + "/api/auth/register", json=body)
        assert register.ok
        for token in tokens_won_while_the_password_changes(server, email, address):
            if requests.get(server.url + PROFILE, headers=bearer(token), timeout=30).ok:
                surviving.append(token)
        assert sign_in(server, email, address).status_code == 401  # The old password is gone.
    assert surviving == []
