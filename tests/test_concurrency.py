"""Concurrency on a real gunicorn: one order per key, no lost updates, shared login limits.

These need commits that other connections see, so they run against servers of their own
on a database of their own (server_database_url), not in the rolled-back test transaction.
"""

import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import psycopg2
import pytest
import redis
import requests

from tests import pg
from tests.servers import GunicornServer, free_port, overlapping_env

pytestmark = pytest.mark.process

PARALLEL_POSTS = 20
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def server(server_database_url):
    """Two workers of four threads, so requests really overlap."""
    env = overlapping_env(server_database_url)
    with GunicornServer(env) as server:
        yield server


def query(database_url: str, sql: str, params=()) -> list[tuple]:
    """Run one statement on the server's database and commit; return its rows."""
    with psycopg2.connect(database_url) as connection, connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


@pytest.fixture(scope="module")
def service_id(server_database_url) -> int:
    """A service to order, written straight to the server's database."""
    rows = query(
        server_database_url,
        "INSERT INTO services (name, description, price_cents, active, created_at, updated_at)"
        " VALUES ('Concurrency', '', 1000, true, now(), now()) RETURNING id",
    )
    return rows[0][0]


def signed_in(server, email: str) -> dict[str, str]:
    """Register email on the server, sign in, and return the Authorization header."""
    credentials = {"email": email, "password": PASSWORD}
    register = requests.post(
        server.url + "/api/auth/register", json=credentials | {"name": "Racer"}, timeout=30
    )
    assert register.status_code == 201
    login = requests.post(server.url + "/api/auth/login", json=credentials, timeout=30)
    return {"Authorization": f"Bearer {login.json()['token']}"}


def all_at_once(count: int, request) -> list[requests.Response]:
    """Run request() on count threads released together by a barrier."""
    barrier = threading.Barrier(count)

    def go(_):
        barrier.wait()
        return request()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(go, range(count)))


def test_parallel_posts_with_one_key_create_exactly_one_order(
    server, server_database_url, service_id
):
    headers = signed_in(server, "idempotent@example.com") | {"Idempotency-Key": "one-order"}
    body = {"service_id": service_id, "quantity": 2}
    responses = all_at_once(
        PARALLEL_POSTS,
        lambda: requests.post(server.url + "/api/orders", json=body, headers=headers, timeout=30),
    )
    assert [r.status_code for r in responses] == [201] * PARALLEL_POSTS, server.output()
    assert len({r.json()["id"] for r in responses}) == 1
    orders = query(
        server_database_url,
        "SELECT count(*) FROM orders JOIN users ON users.id = orders.user_id"
        " WHERE users.email = 'idempotent@example.com'",
    )
    assert orders == [(1,)]


def new_order_url(server, headers: dict[str, str], service_id: int) -> str:
    """Place an order of one unit; return its URL."""
    order = requests.post(
        server.url + "/api/orders",
        json={"service_id": service_id, "quantity": 1},
        headers=headers,
        timeout=30,
    ).json()
    return f"{server.url}/api/orders/{order['id']}"


def test_two_patches_of_one_version_give_one_200_and_one_409(server, service_id):
    headers = signed_in(server, "patcher@example.com")
    for round_number in range(5):
        url = new_order_url(server, headers, service_id)
        notes = iter(["first", "second"])
        responses = all_at_once(
            2,
            lambda url=url, notes=notes: requests.patch(
                url, json={"notes": next(notes), "version": 1}, headers=headers, timeout=30
            ),
        )
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200, 409], (round_number, [r.text for r in responses])
        winner = next(r.json() for r in responses if r.status_code == 200)
        current = requests.get(url, headers=headers, timeout=30).json()
        assert (current["notes"], current["version"]) == (winner["notes"], 2)


def test_two_deletes_of_one_order_both_cancel_it(server, service_id):
    headers = signed_in(server, "canceller@example.com")
    for round_number in range(5):
        url = new_order_url(server, headers, service_id)
        responses = all_at_once(
            2, lambda url=url: requests.delete(url, headers=headers, timeout=30)
        )
        assert [r.status_code for r in responses] == [200, 200], (round_number, responses[0].text)
        assert {r.json()["status"] for r in responses} == {"cancelled"}


PARALLEL_REGISTRATIONS = 8  # Under the 10 an hour one address may make.


def test_racing_writes_on_a_unique_key_put_no_error_in_the_servers_log(
    server, server_database_url, service_id
):
    log = pg.ServerLog()
    body = {"email": "taken-at-once@example.com", "password": PASSWORD, "name": "Racer"}
    registrations = all_at_once(
        PARALLEL_REGISTRATIONS,
        lambda: requests.post(server.url + "/api/auth/register", json=body, timeout=30),
    )
    headers = signed_in(server, "racing-key@example.com") | {"Idempotency-Key": "racing"}
    order = {"service_id": service_id, "quantity": 1}
    orders = all_at_once(
        PARALLEL_POSTS,
        lambda: requests.post(server.url + "/api/orders", json=order, headers=headers, timeout=30),
    )
    statuses = Counter(response.status_code for response in registrations)
    assert statuses == {201: 1, 409: PARALLEL_REGISTRATIONS - 1}, server.output()
    assert [r.status_code for r in orders] == [201] * PARALLEL_POSTS, server.output()
    assert len({r.json()["id"] for r in orders}) == 1
    lines = log.lines_about(pg.database_name(server_database_url))
    assert not [line for line in lines if "duplicate key" in line or "taken-at-once" in line]


RATE_LIMIT_REDIS = "redis://127.0.0.1:6379/11"
PARALLEL_GUESSES = 40


@pytest.fixture
def redis_rate_limits():
    """Settings that count in Redis under a prefix of this test's own; its keys go after."""
    prefix = f"test-{uuid.uuid4().hex}"
    yield {"RATELIMIT_STORAGE_URI": RATE_LIMIT_REDIS, "RATELIMIT_KEY_PREFIX": prefix}
    client = redis.Redis.from_url(RATE_LIMIT_REDIS)
    for key in client.scan_iter(f"*{prefix}*"):
        client.delete(key)


def wrong_logins(server: GunicornServer, email: str, count: int) -> list[int]:
    """Sign in count times with a wrong password; return the statuses."""
    wrong = {"email": email, "password": "not the password"}
    return [
        requests.post(server.url + "/api/auth/login", json=wrong, timeout=30).status_code
        for _ in range(count)
    ]


def parallel_wrong_logins(server: GunicornServer, email: str) -> list[requests.Response]:
    """PARALLEL_GUESSES wrong passwords for email, all at once."""
    wrong = {"email": email, "password": "not the password"}
    return all_at_once(
        PARALLEL_GUESSES,
        lambda: requests.post(server.url + "/api/auth/login", json=wrong, timeout=30),
    )


def assert_five_guesses_got_through(responses: list[requests.Response]) -> None:
    """Five wrong passwords were checked; every other attempt was a 429 with Retry-After."""
    statuses = Counter(response.status_code for response in responses)
    assert statuses == {401: 5, 429: PARALLEL_GUESSES - 5}
    refused = [response for response in responses if response.status_code == 429]
    assert all(int(response.headers["Retry-After"]) > 0 for response in refused)


def test_parallel_guesses_are_counted_before_checking_with_two_workers_on_redis(
    server_database_url, redis_rate_limits
):
    env = overlapping_env(server_database_url) | redis_rate_limits
    with GunicornServer(env) as server:
        signed_in(server, "parallel-redis@example.com")
        responses = parallel_wrong_logins(server, "parallel-redis@example.com")
    assert_five_guesses_got_through(responses)


def test_parallel_guesses_are_counted_before_checking_with_one_worker_in_memory(
    server_database_url,
):
    env = overlapping_env(server_database_url) | {"WEB_CONCURRENCY": "1"}
    with GunicornServer(env) as server:
        signed_in(server, "parallel-memory@example.com")
        responses = parallel_wrong_logins(server, "parallel-memory@example.com")
    assert_five_guesses_got_through(responses)


def test_workers_share_failed_login_counts_through_redis(server_database_url, redis_rate_limits):
    env = overlapping_env(server_database_url) | redis_rate_limits
    with GunicornServer(env) as server:
        signed_in(server, "guessed@example.com")
        statuses = wrong_logins(server, "guessed@example.com", 6)
        right = {"email": "guessed@example.com", "password": PASSWORD}
        blocked = requests.post(server.url + "/api/auth/login", json=right, timeout=30)
    assert statuses == [401] * 5 + [429]
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0
    keys = [key.decode() for key in redis.Redis.from_url(RATE_LIMIT_REDIS).scan_iter("*")]
    ours = [key for key in keys if redis_rate_limits["RATELIMIT_KEY_PREFIX"] in key]
    assert ours and not [key for key in ours if "guessed" in key or "@" in key], ours


def test_sign_in_still_works_and_is_limited_when_redis_is_down(server_database_url):
    closed = f"redis://127.0.0.1:{free_port()}/0"
    env = overlapping_env(server_database_url) | {
        "RATELIMIT_STORAGE_URI": closed,
        "WEB_CONCURRENCY": "1",
    }
    with GunicornServer(env) as server:
        signed_in(server, "redis-down@example.com")
        statuses = wrong_logins(server, "redis-down@example.com", 6)
    assert statuses == [401] * 5 + [429]
