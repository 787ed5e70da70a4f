"""Pool metrics (db_client_connection_*): counted at the pool, whatever path took the connection."""

import threading
import time

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY

from app import create_app
from app.database import dispose_engines
from app.extensions import db
from tests.probes import wait_for_pool_counts
from tests.servers import GunicornServer
from tests.test_metrics import sample


def value(name: str, **labels: str) -> float:
    """One sample of this process's registry (0 when absent)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def counts(app, pool_name: str = "request") -> tuple[float, float]:
    """(idle, used) connections of a pool in this process, published now, not at the tick."""
    app.extensions["pool_metrics"].publish_counts()
    return tuple(
        value("db_client_connection_count", pool_name=pool_name, state=state)
        for state in ("idle", "used")
    )


@pytest.fixture
def pooled_app(database_url):
    """An app of its own (no test transaction), pool of one plus one, started by a request."""
    app = create_app(
        {
            "DATABASE_URL": database_url,
            "SECRET_KEY": "test",
            "DB_POOL_SIZE": 1,
            "DB_MAX_OVERFLOW": 1,
            "DB_POOL_TIMEOUT": 1,  # engine_from_config makes it an int
        }
    )
    assert app.test_client().get("/api/health/live").status_code == 200
    yield app
    dispose_engines(app, close=True)


def test_counts_follow_checkout_checkin_and_close(pooled_app):
    with pooled_app.app_context():
        db.engine.dispose()
        assert counts(pooled_app) == (0, 0)
        connection = db.engine.connect()
        assert counts(pooled_app) == (0, 1)
        connection.close()
        assert counts(pooled_app) == (1, 0)
        db.engine.dispose()
    assert counts(pooled_app) == (0, 0)


def test_an_invalidated_connection_leaves_the_counts(pooled_app):
    with pooled_app.app_context():
        db.engine.dispose()
        connection = db.engine.connect()
        connection.invalidate()
        connection.close()
    assert counts(pooled_app) == (0, 0)


def test_a_timed_out_checkout_is_counted_and_its_wait_observed(pooled_app):
    timeouts = value("db_client_connection_timeouts_total", pool_name="request")
    waits = value("db_client_connection_wait_time_seconds_count", pool_name="request")
    slow_waits = waits - value(
        "db_client_connection_wait_time_seconds_bucket", pool_name="request", le="0.5"
    )
    with pooled_app.app_context():
        held = [db.engine.connect(), db.engine.connect()]
        with pytest.raises(sa.exc.TimeoutError):
            db.engine.connect()
        for connection in held:
            connection.close()
    assert value("db_client_connection_timeouts_total", pool_name="request") == timeouts + 1
    assert value("db_client_connection_wait_time_seconds_count", pool_name="request") == waits + 3
    slow_now = value("db_client_connection_wait_time_seconds_count", pool_name="request") - value(
        "db_client_connection_wait_time_seconds_bucket", pool_name="request", le="0.5"
    )
    assert slow_now == slow_waits + 1


def test_waiters_are_pending_until_they_get_a_connection(pooled_app):
    with pooled_app.app_context():
        held = [db.engine.connect(), db.engine.connect()]
        engine = db.engine
        waiter = threading.Thread(target=lambda: engine.connect().close())
        waiter.start()
        time.sleep(0.1)
        assert value("db_client_connection_pending_requests", pool_name="request") == 1
        held.pop().close()
        waiter.join()
        held.pop().close()
    assert value("db_client_connection_pending_requests", pool_name="request") == 0


def test_create_and_use_times_are_observed(pooled_app):
    created = value("db_client_connection_create_time_seconds_count", pool_name="request")
    used = value("db_client_connection_use_time_seconds_count", pool_name="request")
    with pooled_app.app_context():
        db.engine.dispose()
        with db.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    assert (
        value("db_client_connection_create_time_seconds_count", pool_name="request") == created + 1
    )
    assert value("db_client_connection_use_time_seconds_count", pool_name="request") == used + 1


def test_the_health_probe_is_a_pool_of_its_own(pooled_app):
    used = value("db_client_connection_use_time_seconds_count", pool_name="health")
    assert pooled_app.test_client().get("/api/health").status_code == 200
    assert value("db_client_connection_use_time_seconds_count", pool_name="health") == used + 1
    assert counts(pooled_app, "health") == (0, 0)  # NullPool: closed on return.
    assert value("db_client_connection_max", pool_name="health") == 1


@pytest.mark.process
def test_a_waiting_request_shows_as_pending_then_as_a_timeout(server_database_url):
    env = {
        "DATABASE_URL": server_database_url,
        "GUNICORN_THREADS": "2",
        "DB_POOL_SIZE": "1",
        "DB_MAX_OVERFLOW": "0",
        "DB_POOL_TIMEOUT": "2",
    }
    with GunicornServer(env, ("tests.fault_wsgi:app",)) as server:
        holder = threading.Thread(target=server.get, args=("/test/sleep?seconds=3",))
        holder.start()
        time.sleep(0.3)
        waiter = threading.Thread(target=server.get, args=("/api/services",))
        waiter.start()
        time.sleep(1.2)  # The waiter waits until 2.3 s; the counts are published every second.
        during = server.metrics()
        waiter.join()
        holder.join()
        wait_for_pool_counts()
        after = server.metrics()
    assert sample(during, "db_client_connection_pending_requests", pool_name="request") == 1
    assert sample(during, "db_client_connection_count", pool_name="request", state="used") == 1
    assert sample(after, "db_client_connection_pending_requests", pool_name="request") == 0
    assert sample(after, "db_client_connection_count", pool_name="request", state="used") == 0
    assert sample(after, "db_client_connection_timeouts_total", pool_name="request") == 1
    assert sample(after, "db_client_connection_max", pool_name="request") == 1
    waits = sample(after, "db_client_connection_wait_time_seconds_count", pool_name="request")
    quick = sample(
        after, "db_client_connection_wait_time_seconds_bucket", pool_name="request", le="1.0"
    )
    assert waits - quick == 1  # The waiter's 2 s; the holder got its connection at once.
