"""Throwaway PostgreSQL databases, created, migrated and dropped: the bench's and the tests'.

The bench does not import tests/; the tests take these from here (through tests/pg.py).
"""

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
from sqlalchemy.engine import make_url

ADMIN_DSN = os.environ.get(
    "TEST_ADMIN_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
)
SERVER_URL = os.environ.get("TEST_SERVER_URL", "postgresql://postgres@127.0.0.1:5432")


def admin_execute(sql: str, params=None, dsn: str = ADMIN_DSN):
    """Run one statement on an autocommit admin connection; return its rows, if any."""
    connection = psycopg2.connect(dsn)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else None
    finally:
        connection.close()


def database_name(url: str) -> str:
    """The database a postgresql:// URL names."""
    return make_url(url).database


def create_database(prefix: str = "apptest") -> tuple[str, str]:
    """Create an empty database; return its name and URL."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin_execute(f'CREATE DATABASE "{name}"')
    return name, f"{SERVER_URL}/{name}"


def drop_database(name: str) -> None:
    """Drop a throwaway database, ending whatever is still connected to it."""
    admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrate(url: str) -> None:
    """Build the schema the way a release does: flask db upgrade."""
    from flask_migrate import upgrade

    from app import create_app

    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "test"})
    with app.app_context():
        upgrade()
        from app.extensions import db

        db.engine.dispose()


@contextmanager
def migrated_database(prefix: str = "apptest") -> Iterator[str]:
    """A freshly migrated database's URL while entered, dropped however the block ends."""
    name, url = create_database(prefix)
    try:
        migrate(url)
        yield url
    finally:
        drop_database(name)
