"""A write that reaches a server taking no writes: a standby at the primary's address, or a
primary made read-only. It answers 503 database_read_only and the pool heals by itself.

The standby is a real streaming replica of our own primary (deploy/private_postgres.py);
the primary's address is a TCP proxy whose target moves, as a virtual IP or DNS name does.
"""

import time

import pytest
import sqlalchemy as sa

from app import create_app
from app.database import dispose_engines
from app.database.health import MAX_AGE_S
from app.extensions import db
from bench.postgres import migrate
from deploy.pgbouncer import PgBouncer
from deploy.ports import port_outside_ephemeral_range
from deploy.private_postgres import PostgresPair
from tests.conftest import TEST_SETTINGS, make_caller
from tests.tcp_proxy import TcpProxy

SERVICE = {"name": "Window cleaning", "description": "", "price_cents": 1200}


@pytest.fixture(scope="module")
def pair():
    """A primary with the app's schema and an admin, and its streaming replica."""
    with PostgresPair() as pair:
        pair.primary.execute("CREATE DATABASE app")
        migrate(pair.primary.url("app"))
        yield pair


@pytest.fixture(scope="module")
def admin(pair):
    """An admin's token, written on the primary and replayed on the replica."""
    writer = create_app({**TEST_SETTINGS, "DATABASE_URL": pair.primary.url("app")})
    try:
        caller = make_caller(writer, "admin")
    finally:
        dispose_engines(writer, close=True)
    pair.wait_until_replayed()
    return caller


def app_at(url: str, **settings):
    """The app with DATABASE_URL url, and any other settings."""
    return create_app({**TEST_SETTINGS, "DATABASE_URL": url, **settings})


def two_pooled_connections_in_recovery(app) -> list[bool]:
    """Whether each of two connections the pool hands out at once leads to a standby."""
    with app.app_context():
        held = [db.engine.connect(), db.engine.connect()]
        try:
            return [c.scalar(sa.text("SELECT pg_is_in_recovery()")) for c in held]
        finally:
            for connection in held:
                connection.close()


def test_a_write_on_a_standby_at_the_primarys_address_is_a_503_and_heals_when_it_moves(pair, admin):
    address = TcpProxy(("127.0.0.1", pair.replica.port), port_outside_ephemeral_range())
    address.open()
    app = app_at(f"postgresql://postgres@127.0.0.1:{address.port}/app")
    try:
        client = app.test_client()
        before = two_pooled_connections_in_recovery(app)
        read = client.get("/api/services")
        refused = client.post("/api/services", json=SERVICE, headers=admin.headers)
        health_on_standby = client.get("/api/health")
        address.target = ("127.0.0.1", pair.primary.port)  # The failover completes.
        written = client.post("/api/services", json=SERVICE, headers=admin.headers)
        after = two_pooled_connections_in_recovery(app)
        time.sleep(MAX_AGE_S)  # The health probe checks again.
        health_on_primary = client.get("/api/health")
    finally:
        dispose_engines(app, close=True)
        address.close()

    assert before == [True, True]
    assert read.status_code == 200, "a standby still serves reads"
    assert refused.status_code == 503
    assert refused.json["error"]["code"] == "database_read_only"
    assert refused.headers["Retry-After"] == "1"
    assert written.status_code == 201
    assert after == [False, False], "the pool dropped all its connections to the standby"
    assert health_on_standby.status_code == 200, "reads go on: no reason to leave the rotation"
    assert health_on_standby.json["database"]["acceptsWrites"] is False
    assert health_on_primary.json["database"]["acceptsWrites"] is True


def test_a_write_on_a_read_only_primary_is_a_503_and_heals_when_writes_are_allowed(pair, admin):
    pair.primary.execute("ALTER DATABASE app SET default_transaction_read_only = on")
    try:
        app = app_at(pair.primary.url("app"))
        client = app.test_client()
        read = client.get("/api/services")
        refused = client.post("/api/services", json=SERVICE, headers=admin.headers)
        health = client.get("/api/health")
    finally:
        pair.primary.execute("ALTER DATABASE app RESET default_transaction_read_only")
    try:
        # A connection opened in read-only mode keeps it for its life: the read's was the
        # one the refused write then dropped, so this write connects afresh.
        written = client.post("/api/services", json=SERVICE, headers=admin.headers)
    finally:
        dispose_engines(app, close=True)

    assert refused.status_code == 503
    assert refused.json["error"]["code"] == "database_read_only"
    assert read.status_code == 200
    assert health.json["database"]["acceptsWrites"] is False
    assert written.status_code == 201


def test_behind_pgbouncer_a_write_on_a_standby_is_a_503_too(pair, admin):
    with PgBouncer(server=f"host=127.0.0.1 port={pair.replica.port}") as bouncer:
        app = app_at(
            bouncer.url("app"), DB_POOLER="pgbouncer", PGBOUNCER_ADMIN_URL=bouncer.admin_url
        )
        try:
            client = app.test_client()
            refused = client.post("/api/services", json=SERVICE, headers=admin.headers)
            health = client.get("/api/health")
        finally:
            dispose_engines(app, close=True)

    assert refused.status_code == 503
    assert refused.json["error"]["code"] == "database_read_only"
    assert health.status_code == 200
    assert health.json["database"]["acceptsWrites"] is False
