"""The engine and its connections carry the configured bounds and server settings."""

import pytest
import sqlalchemy as sa
from flask_migrate import downgrade, upgrade
from prometheus_client import REGISTRY

from app import create_app
from app.database import dispose_engines, reading, transaction
from app.extensions import db
from app.models import Service
from tests import pg
from tests.conftest import TEST_SETTINGS


def test_the_pool_has_the_configured_bounds(app):
    with app.app_context():
        pool = db.engine.pool
        assert (pool.size(), pool._max_overflow, pool.timeout()) == (2, 5, 10)
        # DB_POOL_PRE_PING's windowed ping replaces SQLAlchemy's own (app/database/pre_ping.py).
        assert pool._pre_ping is False
        assert pool._recycle == 1800
        assert db.engine.url.drivername == "postgresql+psycopg2"


def test_connections_carry_timeouts_and_our_application_name(app):
    with app.app_context():
        rows = db.session.execute(
            sa.text(
                "SELECT current_setting('statement_timeout'),"
                " current_setting('idle_in_transaction_session_timeout'),"
                " current_setting('application_name')"
            )
        ).one()
    assert tuple(rows) == ("15s", "30s", "app")


def test_transaction_rolls_back_when_the_block_raises(app):
    with app.app_context():
        try:
            with transaction() as session:
                session.add(Service(name="rolled back", price_cents=5))
                session.flush()
                raise ValueError("boom")
        except ValueError:
            pass
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Service)) == 0


def test_sqlite_default_serves_health_with_pool_counts(tmp_path):
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite'}", "SECRET_KEY": "s"})
    body = app.test_client().get("/api/health").json
    assert body["status"] == "ok"
    assert body["database"]["connected"] is True
    assert body["database"]["activeConnections"] == 0
    assert set(body["database"]["pool"]) >= {"size", "checkedOut", "overflow", "idle"}


def test_in_memory_sqlite_serves_health_too():
    app = create_app({"DATABASE_URL": "sqlite://", "SECRET_KEY": "s"})
    body = app.test_client().get("/api/health").json
    assert body["status"] == "ok"
    assert body["database"]["pool"]["class"] == "StaticPool"


def test_flask_shell_has_db_and_every_model(app):
    from app import models
    from app.cli import shell_context

    namespace = shell_context()
    assert namespace["db"] is db
    assert all(namespace[name] is getattr(models, name) for name in models.__all__)


def returned_leaks() -> float:
    """Connections the pool's last resort has taken back from finished requests."""
    labels = {"pool_name": "request"}
    return REGISTRY.get_sample_value("db_client_connection_leaks_total", labels) or 0.0


@pytest.mark.parametrize("ending", ["answers", "raises"])
def test_after_a_request_no_connection_is_checked_out_or_idle_in_transaction(database_url, ending):
    """The teardown ends the session: the pool's last resort (leaks.py) finds nothing."""
    name = f"teardown-{ending}"
    app = create_app({**TEST_SETTINGS, "DATABASE_URL": database_url, "DB_APPLICATION_NAME": name})

    @app.get("/left-open")
    def left_open():
        """Open a transaction on the request's session and leave it to the teardown."""
        db.session.connection(execution_options={"isolation_level": "READ COMMITTED"})
        db.session.execute(sa.text("SELECT 1"))
        if ending == "raises":
            raise RuntimeError("the view failed mid-transaction")
        return {"left": "open"}

    leaks_before = returned_leaks()
    try:
        response = app.test_client().get("/left-open")
        with app.app_context():
            checked_out = db.engine.pool.checkedout()
        states = [state for _, state, _ in pg.our_backends(name)]
    finally:
        dispose_engines(app, close=True)
    assert response.status_code == (200 if ending == "answers" else 500)
    assert checked_out == 0
    assert returned_leaks() == leaks_before
    assert states and "idle in transaction" not in states, states


def test_a_read_commits_on_its_own_and_gives_its_connection_back(app):
    with app.app_context():
        with reading() as session:
            first = session.scalar(sa.text("SELECT txid_current()"))
            second = session.scalar(sa.text("SELECT txid_current()"))
            assert db.engine.pool.checkedout() == 1
        assert first != second, "each read statement is its own transaction"
        assert db.engine.pool.checkedout() == 0


def test_a_transaction_wraps_exactly_its_block(app):
    with app.app_context():
        with transaction() as session:
            first = session.scalar(sa.text("SELECT txid_current()"))
            second = session.scalar(sa.text("SELECT txid_current()"))
        assert first == second
        assert db.engine.pool.checkedout() == 0
        with reading() as session:
            assert session.scalar(sa.text("SELECT txid_current()")) != first


def test_the_embedded_sqlite_database_migrates_up_down_and_serves_a_sign_up(tmp_path):
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'dev.sqlite'}", "SECRET_KEY": "s"})
    with app.app_context():
        upgrade()
        downgrade(revision="base")
        upgrade()
    body = {"email": " Ada@Example.com", "password": "correct horse battery", "name": "Ada"}
    client = app.test_client()
    assert client.post("/api/auth/register", json=body).status_code == 201
    assert client.post("/api/auth/register", json=body).status_code == 409
    credentials = {"email": "ada@example.com", "password": body["password"]}
    assert client.post("/api/auth/login", json=credentials).status_code == 200
    dispose_engines(app, close=True)
