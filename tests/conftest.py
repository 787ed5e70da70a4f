"""Fixtures: one migrated database per session, each test in a rolled-back transaction."""

import pytest
from sqlalchemy.orm import scoped_session, sessionmaker

from app import create_app
from app.database import dispose_engines
from app.extensions import db
from tests import pg

TEST_SETTINGS = {"SECRET_KEY": "test-secret", "TESTING": True, "DB_POOL_SIZE": 2}


@pytest.fixture(scope="session")
def database_url():
    """A freshly migrated database for the whole session, dropped at its end."""
    name, url = pg.create_database()
    try:
        pg.migrate(url)
        yield url
    finally:
        pg.drop_database(name)


@pytest.fixture(scope="module")
def server_database_url():
    """A migrated database of its own for a module whose servers commit for real."""
    name, url = pg.create_database("apptest_srv")
    try:
        pg.migrate(url)
        yield url
    finally:
        pg.drop_database(name)


@pytest.fixture(scope="session")
def app(database_url):
    """The app on the session's database."""
    app = create_app({**TEST_SETTINGS, "DATABASE_URL": database_url})
    yield app
    dispose_engines(app, close=True)


@pytest.fixture(autouse=True)
def isolated(request):
    """Run each test inside a transaction that is rolled back at its end.

    SQLAlchemy's "joining a Session into an external transaction" recipe: the views'
    commits become savepoints of the outer transaction, which is never committed.
    """
    if "app" not in request.fixturenames:
        yield
        return
    app = request.getfixturevalue("app")
    with app.app_context():
        connection = db.engine.connect()
    outer = connection.begin()
    request_session = db.session
    db.session = scoped_session(
        sessionmaker(bind=connection, join_transaction_mode="create_savepoint"),
        scopefunc=request_session.registry.scopefunc,
    )
    try:
        yield
    finally:
        with app.app_context():
            db.session.remove()
        db.session = request_session
        outer.rollback()
        connection.close()


@pytest.fixture
def client(app):
    """An HTTP client of the app."""
    return app.test_client()


@pytest.fixture
def runner(app):
    """A runner for the app's flask commands."""
    return app.test_cli_runner()
