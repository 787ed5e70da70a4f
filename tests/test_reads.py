"""The reads behind GET /api/services/<id>: what the ORM object said, in one round trip."""

import psycopg2
import pytest
import sqlalchemy as sa
from psycopg2.extensions import TRANSACTION_STATUS_IDLE, TRANSACTION_STATUS_INTRANS

from app import create_app
from app.config import load_settings
from app.database import dispose_engines, transaction
from app.database.reads import (
    compiled_read,
    fetch_row,
    row_by_id_statement,
    takes_driver_path,
    untransacted,
)
from app.extensions import db
from app.models import Service
from app.schemas.service import ServiceSchema
from tests.conftest import PASSWORD, TEST_SETTINGS


def test_a_service_reads_the_same_as_its_orm_object(app, client):
    with app.app_context(), transaction() as session:
        service = Service(name="Read me", description="Core, not ORM", price_cents=1234)
        session.add(service)
        session.flush()
        expected = ServiceSchema().dump(service)
    response = client.get(f"/api/services/{expected['id']}")
    assert response.status_code == 200
    assert response.json == expected


def test_a_missing_service_is_a_404_in_the_one_error_shape(client):
    response = client.get("/api/services/987654")
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


@pytest.fixture
def engine(database_url):
    """An engine of its own, outside the tests' joined transaction, as a worker's pool is."""
    url = load_settings({"DATABASE_URL": database_url, "SECRET_KEY": "x"})["DATABASE_URL"]
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    yield engine
    engine.dispose()


def transaction_status(connection) -> int:
    """libpq's transaction status of the connection's DBAPI connection."""
    return connection.connection.dbapi_connection.get_transaction_status()


def test_an_untransacted_read_sends_no_begin_and_switches_autocommit_back(engine):
    with engine.connect() as connection:
        dbapi_connection = connection.connection.dbapi_connection
        with untransacted(connection):
            assert dbapi_connection.autocommit is True
            assert connection.execute(sa.text("SELECT 1")).scalar_one() == 1
            assert transaction_status(connection) == TRANSACTION_STATUS_IDLE
        assert dbapi_connection.autocommit is False
        connection.execute(sa.text("SELECT 1"))
        assert transaction_status(connection) == TRANSACTION_STATUS_INTRANS


def test_inside_a_transaction_the_read_joins_it(engine):
    with engine.connect() as connection:
        first = connection.execute(sa.text("SELECT txid_current()")).scalar_one()
        with untransacted(connection):
            assert connection.connection.dbapi_connection.autocommit is False
            same = connection.execute(sa.text("SELECT txid_current()")).scalar_one()
        assert same == first


def test_a_failed_read_still_switches_autocommit_back(engine):
    with engine.connect() as connection:
        with pytest.raises(sa.exc.DataError), untransacted(connection):
            connection.execute(sa.text("SELECT 1 / 0"))
        assert connection.connection.dbapi_connection.autocommit is False
        assert connection.execute(sa.text("SELECT 2")).scalar_one() == 2


def test_a_lost_connection_raises_its_own_error_and_is_invalidated(engine):
    with engine.connect() as connection:
        with pytest.raises(sa.exc.OperationalError) as lost, untransacted(connection):
            connection.execute(sa.text("SELECT pg_terminate_backend(pg_backend_pid())"))
        assert lost.value.connection_invalidated
        assert connection.invalidated


def test_other_drivers_run_the_block_as_is(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'reads.db'}")
    with engine.connect() as connection, untransacted(connection):
        assert connection.execute(sa.text("SELECT 1")).scalar_one() == 1
    engine.dispose()


@pytest.fixture
def committing_app(server_database_url):
    """The app on a database of this module's own, whose requests commit for real."""
    app = create_app({**TEST_SETTINGS, "DATABASE_URL": server_database_url})
    yield app
    dispose_engines(app, close=True)


def statuses_of_statements(app) -> list[int]:
    """A list that fills with each statement's transaction status as it finishes."""
    statuses = []
    with app.app_context():
        sa.event.listen(
            db.engine,
            "after_cursor_execute",
            lambda connection, *_: statuses.append(transaction_status(connection)),
        )
    return statuses


def test_signed_in_reads_open_no_transaction_and_writes_still_do(committing_app):
    client = committing_app.test_client()
    credentials = {"email": "reader@example.com", "password": PASSWORD}
    client.post("/api/auth/register", json={**credentials, "name": "Reader"})
    token = client.post("/api/auth/login", json=credentials).json["token"]
    headers = {"Authorization": f"Bearer {token}"}
    statuses = statuses_of_statements(committing_app)
    assert client.get("/api/orders", headers=headers).status_code == 200
    assert client.get("/api/services/1").status_code == 404
    assert len(statuses) == 4  # token, page, count; service
    assert set(statuses) == {TRANSACTION_STATUS_IDLE}
    statuses.clear()
    response = client.post("/api/orders", json={"service_id": 1, "quantity": 1}, headers=headers)
    assert response.status_code == 422
    assert set(statuses) == {TRANSACTION_STATUS_INTRANS}


@pytest.fixture
def pooled_engine(database_url):
    """A pooled engine of its own, with a 300 ms statement timeout, as a worker's is."""
    url = load_settings({"DATABASE_URL": database_url, "SECRET_KEY": "x"})["DATABASE_URL"]
    engine = sa.create_engine(
        url, pool_size=1, max_overflow=0, connect_args={"options": "-c statement_timeout=300"}
    )
    yield engine
    engine.dispose()


def driver_read(engine, sql: str):
    """A CompiledRead of raw SQL with no result processing."""
    statement = sa.select(sa.literal_column("1").label("one"))
    read = compiled_read(statement, engine.dialect)
    return type(read)(sql=sql, columns=("value",), processors=(None,))


def backend_pid(engine) -> int:
    """The server backend of the pool's one connection."""
    return fetch_row(engine, driver_read(engine, "SELECT pg_backend_pid()"), {})["value"]


def test_the_driver_read_matches_core_row_for_row(committing_app):
    client = committing_app.test_client()
    with committing_app.app_context():
        service = Service(name="Driver read", description="no Core", price_cents=4321)
        with transaction() as session:
            session.add(service)
        expected = ServiceSchema().dump(service)
        db.session.remove()  # Loading the expired row began a transaction: Core would join it.
        statement = row_by_id_statement(Service.__table__)
        read = compiled_read(statement, db.engine.dialect)
        assert takes_driver_path(db.engine)
        with db.engine.connect() as connection:
            core_row = connection.execute(statement, {"row_id": expected["id"]}).mappings().one()
        assert fetch_row(db.engine, read, {"row_id": expected["id"]}) == dict(core_row)
        assert fetch_row(db.engine, read, {"row_id": 987654}) is None
        assert db.engine.pool.checkedout() == 0
    assert client.get(f"/api/services/{expected['id']}").json == expected


def test_the_driver_read_leaves_its_connection_idle_in_transaction_mode(pooled_engine):
    fetch_row(pooled_engine, driver_read(pooled_engine, "SELECT 1"), {})
    with pooled_engine.connect() as connection:
        assert connection.connection.dbapi_connection.autocommit is False
        assert transaction_status(connection) == TRANSACTION_STATUS_IDLE


def test_a_lost_connection_is_invalidated_and_raised_as_core_raises_it(pooled_engine):
    before = backend_pid(pooled_engine)
    kill = driver_read(pooled_engine, "SELECT pg_terminate_backend(pg_backend_pid())")
    with pytest.raises(sa.exc.OperationalError) as lost:
        fetch_row(pooled_engine, kill, {})
    assert lost.value.connection_invalidated
    assert pooled_engine.pool.checkedout() == 0
    assert backend_pid(pooled_engine) != before


def test_a_cancelled_statement_keeps_its_connection(pooled_engine):
    before = backend_pid(pooled_engine)
    with pytest.raises(sa.exc.OperationalError) as cancelled:
        fetch_row(pooled_engine, driver_read(pooled_engine, "SELECT pg_sleep(2)"), {})
    assert isinstance(cancelled.value.orig, psycopg2.errors.QueryCanceled)
    assert not cancelled.value.connection_invalidated
    assert backend_pid(pooled_engine) == before


def test_a_refused_connection_is_raised_as_core_raises_it():
    engine = sa.create_engine("postgresql+psycopg2://postgres@127.0.0.1:1/x")
    with pytest.raises(sa.exc.OperationalError):
        fetch_row(engine, driver_read(engine, "SELECT 1"), {})
    engine.dispose()


def test_core_reads_while_a_transaction_is_open(committing_app):
    with committing_app.app_context():
        engine = db.engine
        assert takes_driver_path(engine)
        with transaction() as session:
            session.execute(sa.text("SELECT 1"))
            assert not takes_driver_path(engine)
        assert takes_driver_path(engine)


@pytest.mark.parametrize("watcher", ["echo", "before_cursor_execute", "handle_error"])
def test_core_reads_once_anyone_watches_its_statements(committing_app, watcher):
    with committing_app.app_context():
        engine = db.engine
        assert takes_driver_path(engine)
        if watcher == "echo":
            engine.echo = True
        else:
            sa.event.listen(engine, watcher, lambda *args: None)
        assert not takes_driver_path(engine)


def test_core_reads_on_other_drivers():
    app = create_app({"DATABASE_URL": "sqlite://", "SECRET_KEY": "x"})
    with app.app_context():
        assert not takes_driver_path(db.engine)
