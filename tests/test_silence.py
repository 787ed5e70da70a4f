"""A silent database network (every packet dropped) costs each request at most its deadline.

The database is a private PostgreSQL on a port of its own, so the silence (iptables on
loopback) touches nobody else; it is watched through its Unix socket meanwhile. Each test
runs with the app straight on it and through PgBouncer, whose server connections cross the
silenced port.
"""

import contextlib
import os
import socket
import threading
import time
from dataclasses import dataclass

import psycopg2
import pytest
import requests

from app.config import load_settings
from app.database import timeouts
from app.database.engine import connect_args
from bench.postgres import migrate
from deploy.pgbouncer import PgBouncer
from deploy.private_postgres import PrivatePostgres
from tests.iptables import silenced
from tests.servers import GunicornServer, NginxServer, client_from, unique_application_name

pytestmark = pytest.mark.process

DATABASE = "silence"
REQUEST_TIMEOUT_S, CONNECT_TIMEOUT_S = 3, 2
CLIENTS, SILENCE_S = 8, 6
# Each client has an address of its own, and asks below nginx's 50 a second per address
# (deploy/nginx.conf): its 429s would otherwise depend on how fast this machine answers.
PER_CLIENT_RATE = 40
# A 503 answers "no later than the deadline and about a second".
LATEST_ANSWER_S = REQUEST_TIMEOUT_S + 1.0
DATABASE_503_CODES = {"deadline_exceeded", "database_unavailable", "database_busy"}


@pytest.fixture(scope="module")
def private_pg():
    """A private server with the app's schema in database DATABASE."""
    with PrivatePostgres() as server:
        server.execute(f"CREATE DATABASE {DATABASE}")
        migrate(server.url(DATABASE))
        yield server


@pytest.fixture(params=["direct", "pgbouncer"])
def database_env(request, private_pg):
    """The app's database variables: straight to the private server, or through PgBouncer."""
    tcp_url = private_pg.url(DATABASE)
    if request.param == "direct":
        yield {"DATABASE_URL": tcp_url}
        return
    with PgBouncer(server=f"host=127.0.0.1 port={private_pg.port}") as bouncer:
        yield {
            "DATABASE_URL": bouncer.url(DATABASE),
            "DB_POOLER": "pgbouncer",
            "DATABASE_DIRECT_URL": tcp_url,
        }


@pytest.fixture
def server(database_env):
    """Two workers of four threads, pools of 3 + 1, a 3 s deadline and a 2 s connect timeout."""
    env = {
        **database_env,
        "WEB_CONCURRENCY": "2",
        "GUNICORN_THREADS": "4",
        "DB_POOL_SIZE": "3",
        "DB_MAX_OVERFLOW": "1",
        "DB_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT_S),
        "REQUEST_TIMEOUT": str(REQUEST_TIMEOUT_S),
    }
    with GunicornServer(env) as server:
        yield server


@pytest.fixture
def front_door(server):
    """The shipped nginx in front of the server: its X-Request-Start starts the clock."""
    with NginxServer(f"127.0.0.1:{server.port}") as nginx:
        yield nginx


@dataclass
class Answer:
    """One request: when it was sent, how long it took, and what came back."""

    sent_at: float
    seconds: float
    status: int
    code: str | None
    retry_after: str | None


def ask(url: str, client=requests) -> Answer:
    """GET url and time it; the error code of a 503, if any."""
    sent_at = time.monotonic()
    response = client.get(url, timeout=60)
    code = response.json().get("error", {}).get("code") if response.status_code >= 400 else None
    return Answer(
        sent_at,
        time.monotonic() - sent_at,
        response.status_code,
        code,
        response.headers.get("Retry-After"),
    )


def keep_asking(url: str, until: float, answers: list[Answer], address: str) -> None:
    """Ask again and again from address until the monotonic time until, at most
    PER_CLIENT_RATE a second and never in a burst to catch up after a slow answer."""
    client = client_from(address)
    next_at = time.monotonic()
    while next_at < until:
        time.sleep(max(0.0, next_at - time.monotonic()))
        answers.append(ask(url, client))
        next_at = max(next_at + 1 / PER_CLIENT_RATE, time.monotonic())


def load_through(url: str, seconds: float) -> tuple[list[Answer], list[threading.Thread]]:
    """CLIENTS threads asking url for seconds; the answers fill in as they come."""
    answers: list[Answer] = []
    until = time.monotonic() + seconds
    threads = [
        threading.Thread(target=keep_asking, args=(url, until, answers, f"127.0.0.{n + 2}"))
        for n in range(CLIENTS)
    ]
    for thread in threads:
        thread.start()
    return answers, threads


def test_a_silent_database_costs_each_request_at_most_its_deadline(front_door, private_pg):
    url = front_door.url + "/api/services"
    assert ask(url).status == 200
    answers, threads = load_through(url, SILENCE_S + 3)
    time.sleep(1)
    with silenced(private_pg.port):
        silence_started = time.monotonic()
        time.sleep(SILENCE_S)
    network_back = time.monotonic()
    for thread in threads:
        thread.join()

    during = [a for a in answers if silence_started <= a.sent_at < network_back]
    failed = [a for a in answers if a.status != 200]
    after = [a for a in answers if a.sent_at >= network_back]
    first_200_after = min((a.sent_at + a.seconds for a in after if a.status == 200), default=None)
    slowest = max(a.seconds for a in answers)
    print(
        f"{len(answers)} answers, {len(during)} sent in the {SILENCE_S} s silence;"
        f" {len(failed)} failed {sorted({a.code for a in failed} - {None})};"
        f" slowest {slowest:.2f} s ({max(answers, key=lambda a: a.seconds).code});"
        f" first 200 {first_200_after - network_back:.2f} s"
        " after the network came back"
    )
    # Shown when the test fails: which statements the server cancelled, why, and when.
    server_log = private_pg.log.read_text(errors="replace").splitlines()
    cancels = [i for i, line in enumerate(server_log) if "canceling statement" in line]
    print("\n".join("\n".join(server_log[i : i + 2]) for i in cancels[-10:]))
    assert {a.status for a in answers} <= {200, 503}
    assert slowest <= LATEST_ANSWER_S
    assert failed, "the silence was not felt"
    for answer in failed:
        assert answer.code in DATABASE_503_CODES
        assert answer.retry_after and answer.retry_after.isdigit()
    assert first_200_after is not None and first_200_after - network_back < 2


def test_health_says_503_within_the_connect_timeout_while_the_network_is_silent(server, private_pg):
    assert ask(server.url + "/api/health").status == 200
    with silenced(private_pg.port):
        time.sleep(1.1)  # The last check (kept 1 s) is out of date.
        checks = [ask(server.url + "/api/health") for _ in range(3)]
    print(f"health during the silence: {[(a.status, round(a.seconds, 2)) for a in checks]}")
    for check in checks:
        assert check.status == 503
        assert check.seconds <= CONNECT_TIMEOUT_S + 1


@pytest.mark.parametrize("database_env", ["direct"], indirect=True)
def test_a_request_that_queued_past_its_deadline_is_answered_without_the_database(
    server, private_pg
):
    url = server.url + "/api/services"
    stale = f"t={time.time() - REQUEST_TIMEOUT_S - 1:.3f}"
    started = time.monotonic()
    response = requests.get(url, headers={"X-Request-Start": stale}, timeout=10)
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "deadline_exceeded"
    assert response.headers["Retry-After"].isdigit()
    assert elapsed < 0.5
    assert [
        name for name in backends_of(private_pg, server) if name == server.application_name
    ] == []
    fresh = {"X-Request-Start": f"t={time.time():.3f}"}
    assert requests.get(url, headers=fresh, timeout=10).status_code == 200


def backends_of(private_pg: PrivatePostgres, server: GunicornServer) -> list[str]:
    """The application_name of each server connection of the server's."""
    rows = private_pg.execute(
        "SELECT application_name FROM pg_stat_activity WHERE application_name LIKE %s",
        (server.application_name + "%",),
    )
    return [name for (name,) in rows]


# The server's liveness settings, scaled down so a lost connection ends within seconds.
QUICK_LIVENESS = {
    "tcp_keepalives_idle": 1,
    "tcp_keepalives_interval": 1,
    "tcp_keepalives_count": 2,
    "tcp_user_timeout": 2000,
    "client_connection_check_interval": 500,
}


@pytest.mark.parametrize("statement", [None, "SELECT pg_sleep(60)"], ids=["idle", "busy"])
def test_a_connection_the_network_lost_is_closed_on_the_server_too(
    private_pg, monkeypatch, statement
):
    monkeypatch.setattr(timeouts, "SERVER_LIVENESS", QUICK_LIVENESS)
    settings = load_settings({"DATABASE_URL": private_pg.url(DATABASE), "SECRET_KEY": "s"})
    name = unique_application_name()
    connection = psycopg2.connect(
        private_pg.url(DATABASE), **{**connect_args(settings, name), "cursor_factory": None}
    )
    connection.autocommit = True
    if statement:
        threading.Thread(target=run_ignoring_errors, args=(connection, statement)).start()
    expected = "active" if statement else "idle"
    assert wait_for_state(private_pg, name, expected)
    with silenced(private_pg.port):
        silence_began = time.monotonic()
        abandon(connection)  # Its goodbye is lost in the silence: the server hears nothing.
        gone = wait_until_gone(private_pg, name, timeout_s=10)
        after_s = time.monotonic() - silence_began
    connection.close()
    print(f"{expected}: the backend {'was gone' if gone else 'still there'} after {after_s:.2f} s")
    assert gone


def wait_for_state(private_pg: PrivatePostgres, name: str, state: str) -> bool:
    """Whether name's one backend reaches state within 5 s."""
    deadline = time.monotonic() + 5
    while [s for _, s in private_pg.backends(name)] != [state]:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def wait_until_gone(private_pg: PrivatePostgres, name: str, timeout_s: float) -> bool:
    """Whether every backend carrying name ends within timeout_s."""
    deadline = time.monotonic() + timeout_s
    while private_pg.backends(name):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def abandon(connection) -> None:
    """Shut the client's socket as a client whose host vanished would: no more reads or writes."""
    with socket.socket(fileno=os.dup(connection.fileno())) as sock:
        sock.shutdown(socket.SHUT_RDWR)


def run_ignoring_errors(connection, statement: str) -> None:
    """Run statement, expecting it to fail once the connection is abandoned under it."""
    with contextlib.suppress(psycopg2.Error):
        connection.cursor().execute(statement)
