"""The pre-ping bypass window: no ping for a connection just used, healing all the same.

A ping is a round trip, so the tests count them as a user pays them: on the wire, through
bench/netproxy.py without a delay. A checkout and `SELECT pg_backend_pid()` is one round
trip without a ping and two with one.
"""

import threading
import time

import pytest
import sqlalchemy as sa

from app.config import load_settings
from app.database.engine import engine_options
from app.database.pre_ping import BYPASS_WINDOW_S, install_pre_ping
from bench.netproxy import NetProxy
from tests import pg
from tests.topology import Topology

SHORT_WINDOW_S = 0.2
WAIT_S = 5


@pytest.fixture(scope="module")
def proxy():
    """PostgreSQL behind a proxy that counts the round trips it passes, adding no delay."""
    with NetProxy(delay_ms=0) as running:
        yield running


@pytest.fixture
def engine(database_url, proxy, request):
    """A bounded engine like the app's, through the proxy, its connections named for the test."""
    name = f"preping-{request.node.name}"[:48]
    settings = load_settings(
        {"DATABASE_URL": proxy.url(database_url), "SECRET_KEY": "x", "DB_APPLICATION_NAME": name}
    )
    engine = sa.create_engine(settings.database_url, **engine_options(settings))
    engine.application_name = name
    yield engine
    engine.dispose()


def backend_pid(engine) -> int:
    """Check out a connection, return its server pid, check it back in."""
    with engine.connect() as connection:
        return connection.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()


def round_trips_of(proxy: NetProxy, work) -> tuple[int, object]:
    """The round trips work() cost on the wire, and what it returned."""
    before = proxy.totals().round_trips
    result = work()
    return proxy.totals().round_trips - before, result


def terminate_and_wait(application_name: str) -> None:
    """Terminate our backends and wait until the server has let them go."""
    pg.terminate_backends(application_name, timeout_s=WAIT_S)


def test_a_connection_used_within_the_window_is_not_pinged(engine, proxy):
    install_pre_ping(engine, window_s=SHORT_WINDOW_S)
    first = backend_pid(engine)
    assert round_trips_of(proxy, lambda: backend_pid(engine)) == (1, first)


def test_a_connection_idle_past_the_window_is_pinged(engine, proxy):
    install_pre_ping(engine, window_s=SHORT_WINDOW_S)
    first = backend_pid(engine)
    time.sleep(SHORT_WINDOW_S * 1.5)
    assert round_trips_of(proxy, lambda: backend_pid(engine)) == (2, first)


def test_a_terminated_connection_inside_the_window_heals_without_an_error(engine, proxy):
    install_pre_ping(engine, window_s=60)
    first = backend_pid(engine)
    terminate_and_wait(engine.application_name)
    # The server's goodbye on the socket ends the bypass; the ping fails, and the pool opens
    # a new connection (its first statement needs no ping) for the query. The failed ping
    # reaches the proxy or not, as the proxy's own close of that connection races it.
    before = proxy.totals()
    assert backend_pid(engine) != first
    after = proxy.totals()
    assert after.connections - before.connections == 1
    assert after.round_trips - before.round_trips in (1, 2)


def test_a_terminated_connection_past_the_window_heals_without_an_error(engine):
    install_pre_ping(engine, window_s=SHORT_WINDOW_S)
    first = backend_pid(engine)
    time.sleep(SHORT_WINDOW_S * 1.5)
    terminate_and_wait(engine.application_name)
    assert backend_pid(engine) != first


def test_after_a_lost_connection_the_others_are_pinged_again(engine, proxy):
    install_pre_ping(engine, window_s=60)
    lost = engine.connect()
    other = backend_pid(engine)  # the other connection, checked in before the loss
    trips, _ = round_trips_of(proxy, lambda: (lost.invalidate(), lost.close()))
    assert trips == 0
    # The pool hands out the other one first (FIFO): pinged, though inside the window.
    assert round_trips_of(proxy, lambda: backend_pid(engine)) == (2, other)


def app_on(topology, database_url: str, name: str):
    """The app reaching database_url the topology's way, its connections named name."""
    from app import create_app

    settings = {"SECRET_KEY": "x", "DB_APPLICATION_NAME": name}
    return create_app({**topology.env(database_url), **settings})


@pytest.mark.parametrize("wait_past_window", [False, True])
def test_the_app_serves_every_request_after_its_connections_are_lost(
    topology, server_database_url, wait_past_window
):
    from app.database import dispose_engines

    name = f"preping-app-{wait_past_window}"
    app = app_on(topology, server_database_url, name)
    client = app.test_client()
    try:
        assert client.get("/api/services").status_code == 200
        if wait_past_window:
            time.sleep(0.6)
        topology.lose_connections(name, server_database_url)
        statuses = [client.get("/api/services").status_code for _ in range(50)]
        assert statuses == [200] * 50
    finally:
        dispose_engines(app, close=True)


def test_a_connection_lost_after_the_view_answered_does_not_turn_into_a_500(
    topology, server_database_url
):
    import sqlalchemy as sa

    from app.database import dispose_engines
    from app.extensions import db

    name = "lost-before-teardown"
    app = app_on(topology, server_database_url, name)

    def loses_its_connection():
        db.session.execute(sa.text("SELECT 1"))
        topology.lose_connections(name, server_database_url)
        return {"answered": True}

    app.add_url_rule("/test/lose-connection", "lose", loses_its_connection)
    try:
        response = app.test_client().get("/test/lose-connection")
        assert response.status_code == 200
        with app.app_context():
            assert db.engine.pool.checkedout() == 0
        assert app.test_client().get("/api/services").status_code == 200
    finally:
        dispose_engines(app, close=True)


def test_behind_pgbouncer_pre_ping_waits_for_no_server_connection(server_database_url, pgbouncer):
    from app.database import dispose_engines
    from app.extensions import db

    app = app_on(Topology("pgbouncer", pgbouncer), server_database_url, "preping-paused")
    try:
        with app.app_context():
            engine = db.engine
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        time.sleep(BYPASS_WINDOW_S * 1.5)  # a ping is due on the next checkout
        pgbouncer.pause()  # from here, anything sent to the server waits for resume()
        resume = threading.Timer(2, pgbouncer.resume)
        resume.start()
        started = time.monotonic()
        with engine.connect():
            checkout_s = time.monotonic() - started
        resume.join()
    finally:
        dispose_engines(app, close=True)
    assert checkout_s < 0.5
