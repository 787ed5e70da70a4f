"""Fixtures: one migrated database per session, its tables emptied after each test."""

import functools
from dataclasses import dataclass
from itertools import count

import pytest

from app import create_app, rate_limits
from app.database import dispose_engines, transaction
from app.extensions import db
from app.models import Benefit, Service, User
from app.models.user import ADMIN, CUSTOMER
from app.security import hash_password, issue_token
from deploy.pgbouncer import PgBouncer
from tests import fuzzing, pg
from tests.topology import Topology

TEST_ORIGIN = "https://shop.example"
TEST_SETTINGS = {
    "SECRET_KEY": "test-secret",
    "DB_POOL_SIZE": 2,
    "CORS_ORIGINS": TEST_ORIGIN,
}
PASSWORD = "correct horse battery"
_user_numbers = count(1)


@pytest.fixture(scope="session")
def database_url():
    """A freshly migrated database for the whole session, dropped at its end."""
    with pg.migrated_database() as url:
        yield url


@pytest.fixture(scope="module")
def server_database_url():
    """A migrated database of its own for a module whose servers commit for real."""
    with pg.migrated_database("apptest_srv") as url:
        yield url


@pytest.fixture(scope="session")
def app(database_url):
    """The app on the session's database."""
    app = create_app({**TEST_SETTINGS, "DATABASE_URL": database_url})
    yield app
    dispose_engines(app, close=True)


@pytest.fixture(autouse=True)
def isolated(request):
    """Each test of the app starts from the migrated schema with empty tables.

    The app runs as in production (autocommit reads, a transaction per unit of work), so
    its rows are really committed; emptying every table afterwards keeps tests apart
    without binding the app to a test-only connection.
    """
    yield
    if "app" in request.fixturenames:
        empty_tables(request.getfixturevalue("app"))


def empty_tables(app) -> None:
    """Delete every row the test committed, in one statement."""
    tables = ", ".join(f'"{table.name}"' for table in db.metadata.sorted_tables)
    with app.app_context(), db.engine.connect() as connection:
        connection.exec_driver_sql(f"TRUNCATE {tables}")
        db.session.remove()


@pytest.fixture
def pgbouncer_settings() -> dict:
    """Overrides of deploy/pgbouncer.ini for the test's PgBouncer (a module may redefine it)."""
    return {}


@pytest.fixture
def pgbouncer(pgbouncer_settings):
    """A real PgBouncer running the shipped configuration on a free loopback port."""
    with PgBouncer(**pgbouncer_settings) as bouncer:
        yield bouncer


@pytest.fixture(params=["direct", "pgbouncer"])
def topology(request):
    """The app's way to the server: directly, or through PgBouncer in transaction mode."""
    if request.param == "direct":
        yield Topology("direct")
        return
    yield Topology("pgbouncer", request.getfixturevalue("pgbouncer"))


@pytest.fixture
def client(app):
    """An HTTP client of the app."""
    return app.test_client()


class AuthActions:
    """Signing in through the API, as flaskr's `auth` fixture does it."""

    def __init__(self, client):
        self.client = client

    def login(self, email: str, password: str = PASSWORD, address: str | None = None):
        """POST /api/auth/login, from a client address when given; return the response."""
        environ = {"REMOTE_ADDR": address} if address else {}
        body = {"email": email, "password": password}
        return self.client.post("/api/auth/login", json=body, environ_base=environ)


@pytest.fixture
def auth(client) -> AuthActions:
    """Sign-in actions on the test's client."""
    return AuthActions(client)


@pytest.fixture
def runner(app):
    """A runner for the app's flask commands."""
    return app.test_cli_runner()


@pytest.fixture(autouse=True)
def fresh_rate_limits(request):
    """Every test of the app starts with no failed sign-ins counted."""
    if "app" in request.fixturenames:
        attempts = rate_limits.counter_of(request.getfixturevalue("app"))
        for strategy in (attempts.shared, attempts.local):
            strategy.storage.reset()


@functools.cache
def password_hash() -> str:
    """PASSWORD's hash, computed once: scrypt is slow on purpose."""
    return hash_password(PASSWORD)


@dataclass
class Caller:
    """A signed-in user as tests drive them: id, email and ready-made headers."""

    id: int
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        """The Authorization header of this caller."""
        return {"Authorization": f"Bearer {self.token}"}


def make_caller(app, role: str = CUSTOMER) -> Caller:
    """Create a user with PASSWORD and a live token, straight in the database."""
    email = f"{role}{next(_user_numbers)}@example.com"
    with app.app_context(), transaction() as session:
        user = User(email=email, name=role.title(), password_hash=password_hash(), role=role)
        session.add(user)
        session.flush()
        token, _ = issue_token(session, user)
        user_id = user.id
    return Caller(user_id, email, token)


@pytest.fixture
def customer(app) -> Caller:
    """A signed-in customer."""
    return make_caller(app)


@pytest.fixture
def other_customer(app) -> Caller:
    """A second signed-in customer, to try the first one's orders."""
    return make_caller(app)


@pytest.fixture
def admin(app) -> Caller:
    """A signed-in admin."""
    return make_caller(app, ADMIN)


def add_row(app, row) -> int:
    """Insert row, commit it and return its id."""
    with app.app_context(), transaction() as session:
        session.add(row)
        session.flush()
        return row.id


@pytest.fixture
def service_id(app) -> int:
    """An active service at 10.00."""
    return add_row(app, Service(name="Gutter cleaning", description="", price_cents=1000))


@pytest.fixture
def benefit_id(app, service_id) -> int:
    """A 15% benefit, code SAVE15, for every service."""
    return add_row(app, Benefit(code="SAVE15", title="15% off", discount_percent=15))


def pytest_terminal_summary(terminalreporter):
    """Quote how many cases schemathesis generated, for the issue's closing note."""
    if fuzzing.stats["cases"]:
        terminalreporter.write_line(
            f"schemathesis: {fuzzing.stats['cases']} generated cases, "
            f"{fuzzing.stats['failures']} failures; responses by class: "
            + ", ".join(f"{k} {v}" for k, v in sorted(fuzzing.statuses.items()))
        )
