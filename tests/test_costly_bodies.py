"""Bodies made to be costly, on a real gunicorn: refusing them is cheap, others stay fast.

One worker, as a small deployment has per core: what one client makes it spend, every
other client waits for.
"""

import json
import statistics
import threading
import time

import psycopg2
import pytest
import requests

from tests import pg
from tests.servers import GunicornServer

pytestmark = pytest.mark.process

UNKNOWN_KEYS = 50_000
ATTACK_S = 4
ATTACK_INTERVAL_S = 0.2  # Per attacking thread: five bodies a second each.
PASSWORD = "a long password"


def many_unknown_keys(size: int = 1024 * 1024) -> bytes:
    """A JSON object of UNKNOWN_KEYS unknown keys, padded to about size bytes."""
    key_length = size // UNKNOWN_KEYS - 7  # '"…": 1, ' around each key
    return json.dumps({f"{i:0{key_length}d}": 1 for i in range(UNKNOWN_KEYS)}).encode()


BODY = many_unknown_keys()


@pytest.fixture(scope="module")
def server(server_database_url):
    """One sync worker on the module's database."""
    with GunicornServer({"DATABASE_URL": server_database_url}) as server:
        yield server


@pytest.fixture(scope="module")
def admin_headers(server, server_database_url) -> dict[str, str]:
    """The Authorization header of an admin registered on the server."""
    credentials = {"email": "costly-admin@example.com", "password": PASSWORD}
    register = requests.post(
        server.url + "/api/auth/register", json=credentials | {"name": "Admin"}, timeout=30
    )
    assert register.status_code == 201
    with psycopg2.connect(server_database_url) as connection, connection.cursor() as cursor:
        cursor.execute("UPDATE users SET role = 'admin' WHERE email = %s", (credentials["email"],))
    token = requests.post(server.url + "/api/auth/login", json=credentials, timeout=30).json()
    return {"Authorization": f"Bearer {token['token']}"}


def post_body(server, path: str, headers=None) -> requests.Response:
    """POST BODY as JSON to path."""
    headers = {"Content-Type": "application/json", **(headers or {})}
    return requests.post(server.url + path, data=BODY, headers=headers, timeout=30)


def test_a_body_of_many_unknown_keys_is_refused_quickly(server, admin_headers):
    assert 900_000 < len(BODY) <= 1024 * 1024
    durations = []
    for _ in range(5):
        response = post_body(server, "/api/services", admin_headers)
        durations.append(response.elapsed.total_seconds())
        assert response.status_code == 422
        assert len(response.json()["error"]["fields"]) == 20
    assert statistics.median(durations) < 0.1, durations


def test_auth_routes_refuse_a_large_body_unread(server):
    for path in ("/api/auth/register", "/api/auth/login"):
        response = post_body(server, path)
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "request_entity_too_large"


def attack(server, path: str, headers, stop: threading.Event) -> None:
    """Send BODY to path every ATTACK_INTERVAL_S until stop is set."""
    while not stop.is_set():
        post_body(server, path, headers)
        stop.wait(ATTACK_INTERVAL_S)


def test_another_clients_reads_stay_fast_under_such_bodies(
    server, admin_headers, server_database_url
):
    service_id = pg.insert_service(server_database_url)
    targets = [("/api/auth/register", None), ("/api/auth/login", None)]
    targets.append(("/api/services", admin_headers))
    stop = threading.Event()
    attackers = [threading.Thread(target=attack, args=(server, *t, stop)) for t in targets]
    for attacker in attackers:
        attacker.start()
    durations = []
    try:
        deadline = time.monotonic() + ATTACK_S
        while time.monotonic() < deadline:
            response = server.get(f"/api/services/{service_id}")
            assert response.status_code == 200
            durations.append(response.elapsed.total_seconds())
            time.sleep(0.05)
    finally:
        stop.set()
        for attacker in attackers:
            attacker.join()
    assert statistics.median(durations) < 0.05, durations
