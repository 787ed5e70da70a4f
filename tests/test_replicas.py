"""Read replicas on a real primary and streaming replica of our own (deploy/private_postgres.py).

Replicas are read-only copies, so which server answered shows in what a client sees: with
replay paused on the replica, a write on the primary is missing there and present on the
primary.
"""

import json
import os
import shutil
import time

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY
from psycopg2.extensions import TRANSACTION_STATUS_IDLE

from app import create_app
from app.config import load_settings
from app.database import dispose_engines
from app.database.budget import assess_budget
from app.database.replicas import CHECK_INTERVAL_S, READ_AFTER_HEADER, replica_set
from app.extensions import db
from bench.postgres import migrate
from deploy.pgbouncer import PgBouncer
from deploy.private_postgres import PostgresPair, PrivatePostgres
from tests.conftest import TEST_SETTINGS
from tests.iptables import silenced
from tests.pg import insert_service
from tests.servers import GunicornServer, run_gunicorn_expecting_exit

# The replica keeps 80 of its 100 connections for superusers: 20 for us, fewer than the primary.
REPLICA_OPTIONS = "-c superuser_reserved_connections=80"
# Long enough that a replica with replay paused stays in use for a test.
PATIENT_LAG_MS = 60_000
SETTLE_S = 5


@pytest.fixture(scope="module")
def pair():
    """A primary and its streaming replica, with the app's schema, for this module."""
    with PostgresPair(REPLICA_OPTIONS) as pair:
        pair.primary.execute("CREATE DATABASE app")
        migrate(pair.primary.url("app"))
        pair.wait_until_replayed()
        yield pair


def replica_app(pair, **overrides):
    """The app on the pair: DATABASE_URL the primary, DATABASE_REPLICA_URLS the replica."""
    return create_app(
        {
            **TEST_SETTINGS,
            "DATABASE_URL": pair.primary.url("app"),
            "DATABASE_REPLICA_URLS": pair.replica.url("app"),
            "DB_CONNECT_TIMEOUT": 2,
            **overrides,
        }
    )


@pytest.fixture(scope="module")
def app(pair):
    """The app on the pair, patient with lag (conftest's fixtures use it, and empty its tables)."""
    app = replica_app(pair, DB_REPLICA_MAX_LAG_MS=PATIENT_LAG_MS)
    yield app
    dispose_engines(app, close=True)


@pytest.fixture(autouse=True)
def replay_resumed(pair):
    """Each test starts and ends with the replica replaying (and caught up at the start)."""
    resume_replay(pair)
    pair.wait_until_replayed()
    yield
    resume_replay(pair)


def replica_health(client) -> dict:
    """replica1 as /api/health reports it."""
    return client.get("/api/health").json["database"]["replicas"]["replica1"]


def wait_until(condition, timeout_s: float = SETTLE_S) -> None:
    """Poll condition until it holds, or fail."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def serving(client) -> bool:
    """Whether the app routes reads to replica1 now."""
    return replica_health(client)["serving"]


def new_service(client, admin, price_cents: int = 1000) -> tuple[int, str]:
    """Create a service as admin; its id and the response's X-Read-After-LSN."""
    body = {"name": "Lawn mowing", "description": "", "price_cents": price_cents}
    response = client.post("/api/services", json=body, headers=admin.headers)
    assert response.status_code == 201
    return response.json["id"], response.headers[READ_AFTER_HEADER]


def resume_replay(pair) -> None:
    """Let the replica apply WAL again (a promoted one has none to apply)."""
    pair.replica.execute("SELECT pg_wal_replay_resume() WHERE pg_is_in_recovery()")


def pause_replay(pair) -> None:
    """Stop the replica applying WAL: from here it lags behind every new write."""
    pair.replica.execute("SELECT pg_wal_replay_pause()")


def test_catalogue_reads_come_from_the_replica_and_a_writer_reads_its_write(pair, client, admin):
    service_id, _ = new_service(client, admin, 1000)
    pair.wait_until_replayed()
    wait_until(lambda: serving(client))
    pause_replay(pair)
    changed = client.patch(
        f"/api/services/{service_id}", json={"price_cents": 2000}, headers=admin.headers
    )
    written_at = changed.headers[READ_AFTER_HEADER]

    from_replica = client.get(f"/api/services/{service_id}")
    listed = client.get("/api/services")
    writers_read = client.get(
        f"/api/services/{service_id}", headers={READ_AFTER_HEADER: written_at}
    )
    garbled = [
        client.get(f"/api/services/{service_id}", headers={READ_AFTER_HEADER: text})
        for text in ("soon", "-1/-1", "0x0/0")
    ]

    assert from_replica.json["price_cents"] == 1000, "anyone may read the catalogue a little old"
    assert listed.json["items"][0]["price_cents"] == 1000
    assert writers_read.json["price_cents"] == 2000, "the writer reads its own write"
    assert [read.json["price_cents"] for read in garbled] == [2000] * 3, (
        "a header that is no LSN as PostgreSQL writes it reads from the primary"
    )


def test_behind_pgbouncer_the_primary_is_reached_through_it_and_the_replica_directly(
    pair, client, admin
):
    service_id, _ = new_service(client, admin, 1000)
    with PgBouncer(server=f"host=127.0.0.1 port={pair.primary.port}") as bouncer:
        bounced_app = replica_app(
            pair,
            DATABASE_URL=bouncer.url("app"),
            DB_POOLER="pgbouncer",
            DATABASE_DIRECT_URL=pair.primary.url("app"),
            PGBOUNCER_ADMIN_URL=bouncer.admin_url,
            DB_REPLICA_MAX_LAG_MS=PATIENT_LAG_MS,
        )
        try:
            bounced = bounced_app.test_client()
            pair.wait_until_replayed()
            wait_until(lambda: serving(bounced))
            pause_replay(pair)
            url = f"/api/services/{service_id}"
            changed = bounced.patch(url, json={"price_cents": 2000}, headers=admin.headers)
            from_replica = bounced.get(url)
            writers_read = bounced.get(
                url, headers={READ_AFTER_HEADER: changed.headers[READ_AFTER_HEADER]}
            )
            database = bounced.get("/api/health").json["database"]
        finally:
            dispose_engines(bounced_app, close=True)

    assert changed.status_code == 200  # Through PgBouncer: the app's only way to the primary.
    assert from_replica.json["price_cents"] == 1000, "the catalogue is read from the replica"
    assert writers_read.json["price_cents"] == 2000, "the writer reads its write, on the primary"
    assert database["replicas"]["replica1"]["serving"] is True
    assert "pooler" in database, "health reads PgBouncer's numbers beside the replica's"


def test_a_one_row_get_from_the_replica_is_one_statement_there_and_none_on_the_primary(
    pair, app, client, admin
):
    service_id, _ = new_service(client, admin)
    pair.wait_until_replayed()
    wait_until(lambda: serving(client))
    with app.app_context():
        engines = {"primary": db.engine, "replica": replica_set(app).engines()["replica1"]}
    seen = {name: [] for name in engines}
    # Only the request's statements: the replica monitors measure lag meanwhile.
    listeners = {
        name: lambda conn, cursor, statement, *_, name=name: (
            "lsn" not in statement and seen[name].append(cursor.connection.get_transaction_status())
        )
        for name in engines
    }
    for name, engine in engines.items():
        sa.event.listen(engine, "after_cursor_execute", listeners[name])
    try:
        assert client.get(f"/api/services/{service_id}").status_code == 200
    finally:
        for name, engine in engines.items():
            sa.event.remove(engine, "after_cursor_execute", listeners[name])
    assert seen == {"primary": [], "replica": [TRANSACTION_STATUS_IDLE]}


def test_a_clients_own_orders_are_read_where_its_write_is(pair, client, customer, service_id):
    pair.wait_until_replayed()
    wait_until(lambda: serving(client))
    pause_replay(pair)
    placed = client.post(
        "/api/orders", json={"service_id": service_id, "quantity": 2}, headers=customer.headers
    )
    order_id, written_at = placed.json["id"], placed.headers[READ_AFTER_HEADER]

    with_position = {**customer.headers, READ_AFTER_HEADER: written_at}
    own_read = client.get(f"/api/orders/{order_id}", headers=with_position)
    own_list = client.get("/api/orders", headers=with_position)
    without_header = client.get(f"/api/orders/{order_id}", headers=customer.headers)

    assert own_read.status_code == 200 and own_read.json["quantity"] == 2
    assert [order["id"] for order in own_list.json["items"]] == [order_id]
    assert without_header.status_code == 200, "without the header, orders stay on the primary"


def test_a_revoked_token_is_refused_at_once_with_replay_paused(pair, client, customer):
    pause_replay(pair)
    assert client.post("/api/auth/logout", headers=customer.headers).status_code in (200, 204)
    refused = client.get("/api/orders", headers={**customer.headers, READ_AFTER_HEADER: "0/0"})
    assert refused.status_code == 401


def test_a_replica_past_the_lag_bound_serves_no_reads_until_it_catches_up(pair, admin):
    strict = replica_app(pair, DB_REPLICA_MAX_LAG_MS=300)
    client = strict.test_client()
    try:
        service_id, _ = new_service(client, admin, 1000)
        pair.wait_until_replayed()
        wait_until(lambda: serving(client))
        pause_replay(pair)
        client.patch(
            f"/api/services/{service_id}", json={"price_cents": 3000}, headers=admin.headers
        )
        wait_until(lambda: not serving(client))
        lagging = replica_health(client)
        fresh = client.get(f"/api/services/{service_id}")
        health = client.get("/api/health")

        resume_replay(pair)
        wait_until(lambda: serving(client))
    finally:
        dispose_engines(strict, close=True)
    assert fresh.json["price_cents"] == 3000, "past the bound, reads come from the primary"
    assert lagging["lagMs"] > 300 and lagging["reason"].startswith("lagging")
    assert health.status_code == 200 and health.json["status"] == "ok"


def test_health_shows_each_replica_without_naming_hosts(pair, client):
    wait_until(lambda: serving(client))
    response = client.get("/api/health")
    replica = response.json["database"]["replicas"]["replica1"]
    assert response.status_code == 200 and response.json["status"] == "ok"
    assert replica["connected"] is True and replica["lagMs"] == 0
    assert {"size", "checkedOut", "overflow", "idle"} <= set(replica["pool"])
    text = response.get_data(as_text=True)
    assert "127.0.0.1" not in text and str(pair.replica.port) not in text


def test_metrics_name_each_replicas_pool_its_lag_and_whether_it_serves(pair, client, admin):
    service_id, _ = new_service(client, admin)
    pair.wait_until_replayed()
    wait_until(lambda: serving(client))
    assert client.get(f"/api/services/{service_id}").status_code == 200

    def sample(name: str) -> float | None:
        return REGISTRY.get_sample_value(name, {"pool_name": "replica1"})

    assert sample("db_client_connection_max") == 2 + 5
    assert sample("db_client_connection_wait_time_seconds_count") >= 1
    assert sample("db_replica_serving") == 1
    assert sample("db_replica_lag_seconds") == 0
    assert sample("db_replica_max_lag_seconds") is not None  # the last app here set it


def test_each_process_measures_a_replica_about_once_a_second(app, client):
    wait_until(lambda: serving(client))
    engine = replica_set(app).engines()["replica1"]
    measured = []

    def count(conn, cursor, statement, *_):
        if "pg_last_wal_replay_lsn" in statement:
            measured.append(time.monotonic())

    sa.event.listen(engine, "after_cursor_execute", count)
    started = time.monotonic()
    try:
        for _ in range(30):  # Health and reads as fast as they come: no extra measurement.
            client.get("/api/health")
            client.get("/api/services")
        time.sleep(3)
    finally:
        sa.event.remove(engine, "after_cursor_execute", count)
    elapsed_s = time.monotonic() - started
    assert 2 <= len(measured) <= elapsed_s / CHECK_INTERVAL_S + 1


def test_db_info_shows_each_replica_with_its_host(pair, runner):
    info = json.loads(runner.invoke(args=["db-info", "--json"]).output)
    replica = info["health"]["database"]["replicas"]["replica1"]
    assert replica["connected"] is True
    assert f"127.0.0.1:{pair.replica.port}" in replica["url"]


def test_the_budget_check_refuses_more_than_a_replica_can_give(pair):
    settings = load_settings(
        {
            **TEST_SETTINGS,
            "DATABASE_URL": pair.primary.url("app"),
            "DATABASE_REPLICA_URLS": pair.replica.url("app"),
            "WEB_CONCURRENCY": 3,  # 3 × (2 + 5) = 21 on the replica, which gives 20
        }
    )
    app = replica_app(pair, WEB_CONCURRENCY=3)
    try:
        verdict, _, _ = assess_budget(settings, app.extensions["health_probe"].server_engine)
    finally:
        dispose_engines(app, close=True)
    assert verdict.errors == [
        "replica1: worst case WEB_CONCURRENCY 3 × (DB_POOL_SIZE 2 + DB_MAX_OVERFLOW 5) = 21"
        " exceeds what replica1 can give: max_connections 100 − superuser_reserved_connections"
        " 80 = 20"
    ]


def test_a_stopped_replica_costs_no_read_and_comes_back_when_it_heals(pair, client, admin):
    service_id, _ = new_service(client, admin, 1500)
    pair.wait_until_replayed()
    wait_until(lambda: serving(client))
    pair.replica.halt()
    try:
        started = time.monotonic()
        reads = [client.get(f"/api/services/{service_id}") for _ in range(5)]
        elapsed = time.monotonic() - started
        health = client.get("/api/health")
        down = replica_health(client)
    finally:
        pair.replica.start()
    wait_until(lambda: serving(client), timeout_s=10)
    assert [read.status_code for read in reads] == [200] * 5
    assert all(read.json["price_cents"] == 1500 for read in reads)
    assert elapsed < 2 + 1, "within DB_CONNECT_TIMEOUT + 1 s"
    assert health.status_code == 200 and health.json["status"] == "ok"
    assert down["connected"] is False or down["serving"] is False


@pytest.fixture
def second_replica(pair):
    """Another streaming replica of the pair's primary, for this test alone."""
    standby = PrivatePostgres(REPLICA_OPTIONS)
    try:
        yield pair.clone(standby)
    finally:
        standby.stop()


def test_two_replicas_share_the_reads_and_a_stopped_one_leaves_them_to_the_other(
    pair, second_replica, client, admin
):
    service_id, _ = new_service(client, admin, 1000)
    url = f"/api/services/{service_id}"
    two = replica_app(
        pair,
        DATABASE_REPLICA_URLS=f"{pair.replica.url('app')},{second_replica.url('app')}",
        DB_REPLICA_MAX_LAG_MS=PATIENT_LAG_MS,
    )
    try:
        reader = two.test_client()
        for standby in (pair.replica, second_replica):
            pair.wait_until_replayed(standby)
        wait_until(
            lambda: all(
                r["serving"]
                for r in reader.get("/api/health").json["database"]["replicas"].values()
            )
        )
        # Each server a price of its own: replica1 1000, replica2 2000, the primary 3000.
        pause_replay(pair)
        client.patch(url, json={"price_cents": 2000}, headers=admin.headers)
        pair.wait_until_replayed(second_replica)
        second_replica.execute("SELECT pg_wal_replay_pause()")
        client.patch(url, json={"price_cents": 3000}, headers=admin.headers)
        shared = {reader.get(url).json["price_cents"] for _ in range(20)}
        second_replica.halt()
        after_halt = [reader.get(url).json["price_cents"] for _ in range(10)]
        replicas = reader.get("/api/health").json["database"]["replicas"]
    finally:
        dispose_engines(two, close=True)

    assert shared == {1000, 2000}, (
        "each read picks one of the replicas in bounds, never the primary"
    )
    assert after_halt == [1000] * 10, (
        "replica1 serves them all, the read that finds replica2 gone included"
    )
    assert replicas["replica1"]["serving"] is True
    assert replicas["replica2"]["serving"] is False


@pytest.mark.skipif(
    shutil.which("iptables") is None or os.geteuid() != 0, reason="needs iptables as root"
)
def test_a_silent_replica_delays_one_read_then_reads_go_to_the_primary(pair, client, admin):
    service_id, _ = new_service(client, admin, 1700)
    pair.wait_until_replayed()
    wait_until(lambda: serving(client))
    client.get(f"/api/services/{service_id}")
    time.sleep(1)  # Past the pre-ping's bypass window: the pooled connection is tested.
    timings = []
    with silenced(pair.replica.port):
        for _ in range(8):
            started = time.monotonic()
            read = client.get(f"/api/services/{service_id}")
            timings.append((read.status_code, read.json["price_cents"], time.monotonic() - started))
        health = client.get("/api/health")
    wait_until(lambda: serving(client), timeout_s=10)
    assert [(status, price) for status, price, _ in timings] == [(200, 1700)] * 8
    # The read that finds it silent: a ping, then a new connection, each DB_CONNECT_TIMEOUT (2 s).
    assert timings[0][2] < 2 * 2 + 1, f"two DB_CONNECT_TIMEOUTs + 1 s: {timings}"
    assert all(seconds < 0.5 for *_, seconds in timings[1:]), f"then the primary: {timings}"
    assert health.status_code == 200 and health.json["status"] == "ok"


def test_bad_replica_settings_stop_start_up_with_one_line():
    with pytest.raises(SystemExit) as urls:
        load_settings({"DATABASE_REPLICA_URLS": "mysql://replica/app"})
    with pytest.raises(SystemExit) as lag:
        load_settings({"DB_REPLICA_MAX_LAG_MS": "soon"})
    assert str(urls.value) == (
        "configuration error: DATABASE_REPLICA_URLS='mysql://replica/app' is invalid; it"
        " accepts empty, or comma-separated postgres:// or postgresql:// URLs"
    )
    assert "DB_REPLICA_MAX_LAG_MS='soon'" in str(lag.value)
    assert "milliseconds from 1 to 86400000" in str(lag.value)


def backends_named(pair, application_name: str) -> int:
    """The replica's connections carrying application_name."""
    [(count,)] = pair.replica.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (application_name,)
    )
    return count


def gunicorn_env(pair, **values) -> dict[str, str]:
    """gunicorn's environment on the pair, two workers."""
    return {
        "DATABASE_URL": pair.primary.url("app"),
        "DATABASE_REPLICA_URLS": pair.replica.url("app"),
        "WEB_CONCURRENCY": "2",
        "DB_POOL_SIZE": "2",
        **values,
    }


@pytest.mark.process
def test_gunicorn_reads_from_the_replica_and_sigterm_leaves_no_replica_connection(pair):
    service_id = insert_service(pair.primary.url("app"))
    pair.wait_until_replayed()
    with GunicornServer(gunicorn_env(pair)) as server:
        wait_until(lambda: 'db_replica_serving{pool_name="replica1"} 1.0' in server.metrics())
        reads = [server.get(f"/api/services/{service_id}") for _ in range(20)]
        name = f"{server.application_name}/replica1"
        while_serving = backends_named(pair, name)
        health = server.get("/api/health").json()
        server.stop()
    assert {read.status_code for read in reads} == {200}
    assert while_serving >= 1, "the reads were served by the replica's pools"
    assert health["database"]["replicas"]["replica1"]["connected"] is True
    wait_until(lambda: backends_named(pair, name) == 0, timeout_s=2)


@pytest.mark.process
def test_gunicorn_refuses_to_start_past_what_a_replica_can_give(pair):
    # 3 × (2 + 5) = 21 on the replica, which gives 20; the primary gives 97.
    code, output = run_gunicorn_expecting_exit(gunicorn_env(pair, WEB_CONCURRENCY="3"))
    assert code != 0
    assert "replica1: worst case WEB_CONCURRENCY 3" in output
    assert "exceeds what replica1 can give" in output


def test_a_promoted_replica_serves_no_reads(pair, client, admin):
    # Last in the module: a promoted replica follows the primary no more.
    service_id, _ = new_service(client, admin, 1000)
    pair.wait_until_replayed()
    wait_until(lambda: serving(client))
    pair.replica.execute("SELECT pg_promote()")
    wait_until(lambda: not serving(client))
    client.patch(f"/api/services/{service_id}", json={"price_cents": 4000}, headers=admin.headers)
    read = client.get(f"/api/services/{service_id}")
    assert replica_health(client)["reason"] == "promoted: not in recovery"
    assert read.json["price_cents"] == 4000, "the promoted copy missed it; the primary has it"
