"""Throwaway PostgreSQL databases for tests: created, migrated, dropped."""

import os
import time
import uuid

import psycopg2

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


def create_database(prefix: str = "apptest") -> tuple[str, str]:
    """Create an empty database; return its name and URL."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin_execute(f'CREATE DATABASE "{name}"')
    return name, f"{SERVER_URL}/{name}"


def drop_database(name: str) -> None:
    """Drop a test database, ending whatever is still connected to it."""
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
    app.extensions["health_probe"].dispose()


def our_backends(application_name: str, dsn: str = ADMIN_DSN) -> list[tuple]:
    """(pid, state, application_name) of the server connections carrying our name."""
    return admin_execute(
        "SELECT pid, state, application_name FROM pg_stat_activity"
        " WHERE application_name = %s OR application_name LIKE %s",
        (application_name, application_name + "/%"),
        dsn,
    )


def terminate_backends(application_name: str, timeout_s: float = 5) -> int:
    """Kill our server connections, as a failover would, and wait until they are gone.

    pg_terminate_backend only signals: a backend says goodbye and leaves a moment later,
    and "after the kill" means once it has.
    """
    killed = admin_execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
        (application_name,),
    )
    deadline = time.monotonic() + timeout_s
    while our_backends(application_name) and time.monotonic() < deadline:
        time.sleep(0.01)
    return len(killed)


def insert_service(url: str, name: str = "Healing check") -> int:
    """Insert one service row directly (committed); return its id."""
    rows = admin_execute(
        "INSERT INTO services (name, description, price_cents, active, created_at, updated_at)"
        " VALUES (%s, '', 1000, true, now(), now()) RETURNING id",
        (name,),
        url,
    )
    return rows[0][0]
