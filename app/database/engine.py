"""Engine options: the bounded pool, autocommit reads and the per-connection settings."""

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from app.config import Settings, is_postgresql
from app.database.cursor import statement_cursor
from app.database.pool_watch import TimedQueuePool
from app.database.timeouts import startup_options

# A server that vanishes without a reset (failover, cable) is noticed within about 30 s,
# idle or mid-call, instead of hanging a worker until the kernel gives up (minutes).
TCP_LIVENESS = {
    "keepalives": 1,
    "keepalives_idle": 15,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,
}


def engine_options(settings: Settings) -> dict[str, Any]:
    """SQLAlchemy engine options for the request pool of one process.

    On PostgreSQL connections run in autocommit: a read is one statement and one round
    trip, with no BEGIN before it or ROLLBACK after, and behind PgBouncer it holds a server
    connection only while it runs. Every write is a transaction all the same (session.py).
    SQLite, in process, has no round trips to save: its sessions are plain transactions.
    """
    options: dict[str, Any] = {"hide_parameters": True}
    if is_in_memory_sqlite(settings.database_url):
        return options  # Flask-SQLAlchemy shares one connection (StaticPool): nothing to size.
    options.update(
        poolclass=TimedQueuePool,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        pool_recycle=settings.db_pool_recycle,
        # DB_POOL_PRE_PING installs pre_ping.py's windowed ping instead (see init_app).
        pool_pre_ping=False,
    )
    if is_postgresql(settings.database_url):
        options["isolation_level"] = "AUTOCOMMIT"
        options["connect_args"] = connect_args(settings, settings.db_application_name)
    return options


def pool_less_engine(
    settings: Settings, url: str, application_name: str, direct: bool = True
) -> Engine:
    """An engine without a pool, for a tool's few connections (health probe, migrations).

    It has the request pool's timeouts and keepalives, its own application_name, and keeps
    statement parameters out of error messages, as the request engine does.
    """
    options: dict[str, Any] = {"poolclass": NullPool, "hide_parameters": True}
    if is_postgresql(url):
        options["connect_args"] = connect_args(settings, application_name, direct=direct)
    return sa.create_engine(url, **options)


def is_in_memory_sqlite(url: str) -> bool:
    """Whether url names an in-memory SQLite database."""
    return url in ("sqlite://", "sqlite:///:memory:") or "mode=memory" in url


def connect_args(settings: Settings, application_name: str, direct: bool = False) -> dict[str, Any]:
    """psycopg2 connection arguments: timeouts, keepalives, our application_name and cursor.

    The server limits travel as startup options; behind PgBouncer (unless direct: a
    connection to the server itself) the cursor sends them with each transaction instead
    (pgbouncer.py). The cursor also tags each statement and caps it at the deadline (cursor.py).
    """
    through_pgbouncer = settings.behind_pgbouncer and not direct
    arguments = {
        "connect_timeout": settings.db_connect_timeout,
        "application_name": application_name,
        "cursor_factory": statement_cursor(settings, through_pgbouncer),
        **TCP_LIVENESS,
    }
    if not through_pgbouncer:
        arguments["options"] = startup_options(settings)
    return arguments
