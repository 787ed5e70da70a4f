"""PgBouncer in transaction mode (DB_POOLER=pgbouncer): what changes for our connections,
and what its admin console tells about our database.

A connection of ours is then a client connection to PgBouncer, which lends a server
connection for each transaction. So:
- the server limits travel with each transaction, never as session settings: PgBouncer
  refuses the startup parameter that carries them to a server (timeouts.py), and a
  session-level SET would stay on the server connection for whichever client gets it next.
  The first statement of every transaction carries them as SET LOCAL, in the same round
  trip: a statement in autocommit runs, with its SET LOCAL, as one implicit transaction,
  and a transaction keeps them until it ends;
- a lost connection says nothing about the others (PgBouncer keeps them while the server
  restarts behind it), so the pool does not throw them all away as it would on a server;
- PgBouncer ends a client that waited longer than its query_wait_timeout for a server
  connection by closing it, which psycopg2 reports as a lost connection with no SQLSTATE.
  A statement that lost its connection after waiting at least QUEUE_WAIT_FLOOR_S is
  reported as that queue timeout (503 database_busy). A server that dies under a
  statement running that long is reported the same way; both answer 503 + Retry-After.

PGBOUNCER_ADMIN_URL is a postgresql:// URL to PgBouncer's `pgbouncer` database, as a user
listed in `stats_users` (SHOW only) or `admin_users`. The console speaks only the simple
query protocol and only its own commands (`SHOW POOLS`, `PAUSE db`, …): psycopg2 in
autocommit sends each as one simple query, with no BEGIN around it. `pool_numbers` and
`pgbouncer_settings` never raise: they answer (None, reason) when PgBouncer cannot be read,
so a caller serving a request reports the reason instead.
"""

import time
from dataclasses import dataclass
from typing import Any

import psycopg2
from psycopg2.extensions import TRANSACTION_STATUS_IDLE
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine

from app.config import Settings
from app.database.deadline import DeadlineReached
from app.database.describe import describe
from app.database.timeouts import server_settings

# deploy/pgbouncer.ini's query_wait_timeout is at least this long.
QUEUE_WAIT_FLOOR_S = 1.0
STARTED_AT = "statement_started_at"


class PoolerQueueTimeout(sa_exc.TimeoutError):
    """PgBouncer gave up waiting for a free server connection for this statement."""


def install_pgbouncer_mode(engine: Engine, settings: Settings) -> None:
    """Make engine safe and truthful on PgBouncer in transaction mode."""
    event.listen(engine, "before_cursor_execute", note_statement_start)
    event.listen(engine, "after_cursor_execute", note_statement_end)
    event.listen(engine, "handle_error", keep_other_connections)


def transaction_local_prefix(settings: Settings) -> str:
    """The limits as SET LOCAL statements, to run ahead of a transaction's first statement."""
    return "".join(
        f"SET LOCAL {name} = {value}; " for name, value in server_settings(settings).items()
    )


def starts_a_transaction(dbapi_connection) -> bool:
    """Whether the next statement on this psycopg2 connection opens a transaction.

    In autocommit each statement is its own; otherwise psycopg2 sends BEGIN before the
    first statement after an idle moment.
    """
    if dbapi_connection.autocommit:
        return True
    return dbapi_connection.get_transaction_status() == TRANSACTION_STATUS_IDLE


def note_statement_start(connection, cursor, statement, parameters, context, executemany):
    """Remember when the statement was sent, to tell a queue timeout from a crash."""
    connection.info[STARTED_AT] = time.monotonic()


def note_statement_end(connection, cursor, statement, parameters, context, executemany):
    """Forget the start: a COMMIT lost later is not a statement that waited in the queue."""
    connection.info.pop(STARTED_AT, None)


def keep_other_connections(context: sa_exc.StatementError | Any):
    """On a lost connection drop only that one, and name a queue timeout as such."""
    if not context.is_disconnect:
        return None
    context.invalidate_pool_on_disconnect = False
    if isinstance(context.original_exception, DeadlineReached):
        return None  # We stopped waiting (deadline.py), not PgBouncer.
    if getattr(context.original_exception, "pgcode", None):
        return None  # The server answered (a write refused as read-only, read_only.py).
    started_at = context.connection.info.get(STARTED_AT) if context.connection else None
    if started_at is not None and time.monotonic() - started_at >= QUEUE_WAIT_FLOOR_S:
        return PoolerQueueTimeout(
            "PgBouncer closed the connection while the statement waited for a server"
        )
    return None


# Seconds to reach the console: health and start-up must not hang on a missing PgBouncer.
ADMIN_CONNECT_TIMEOUT_S = 2
# SHOW CONFIG keys whose values are numbers (seconds may have a fraction).
NUMERIC_SETTINGS = (
    "default_pool_size",
    "reserve_pool_size",
    "max_client_conn",
    "max_db_connections",
    "max_user_connections",
    "query_wait_timeout",
    "server_idle_timeout",
    "server_lifetime",
)


@dataclass(frozen=True)
class PoolNumbers:
    """One (database, user) row of SHOW POOLS: PgBouncer's clients and servers for it."""

    database: str
    user: str
    cl_active: int
    cl_waiting: int
    sv_active: int
    sv_idle: int
    sv_used: int
    maxwait_s: float

    def report(self) -> dict[str, Any]:
        """The numbers as /api/health and db-info print them."""
        return {
            "clientsActive": self.cl_active,
            "clientsWaiting": self.cl_waiting,
            "serversActive": self.sv_active,
            "serversIdle": self.sv_idle,
            "serversUsed": self.sv_used,
            "longestWaitSeconds": self.maxwait_s,
        }


@dataclass(frozen=True)
class PoolerSettings:
    """SHOW CONFIG as numbers, and the SHOW DATABASES row of each database PgBouncer knows."""

    config: dict[str, float]
    databases: dict[str, dict[str, Any]]

    def server_connections(self, database: str) -> tuple[int, str]:
        """Most server connections PgBouncer opens to database, and the sum that gives it.

        A database row carries its effective pool_size, reserve_pool and max_connections
        (max_db_connections); a wildcard database appears there only once a client used it,
        so until then the global settings apply. One role per database is assumed.
        """
        row = self.databases.get(database, {})
        pool = int(row.get("pool_size", self.config["default_pool_size"]))
        reserve = int(row.get("reserve_pool", self.config["reserve_pool_size"]))
        cap = int(row.get("max_connections", self.config["max_db_connections"]))
        total = pool + reserve
        arithmetic = f"PgBouncer pool_size {pool} + reserve_pool_size {reserve} = {total}"
        if 0 < cap < total:
            return cap, f"PgBouncer max_db_connections {cap}"
        return total, arithmetic


def admin_rows(admin_url: str, command: str) -> list[dict[str, Any]]:
    """Run one admin console command; its rows as dictionaries (psycopg2.Error on failure)."""
    connection = psycopg2.connect(libpq_url(admin_url), connect_timeout=ADMIN_CONNECT_TIMEOUT_S)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(command)
            if cursor.description is None:
                return []
            names = [column.name for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        connection.close()


def libpq_url(url: str) -> str:
    """The URL as libpq reads it: without SQLAlchemy's +driver suffix."""
    return url.replace("postgresql+psycopg2://", "postgresql://", 1)


def pool_numbers(admin_url: str, database: str, user: str) -> tuple[PoolNumbers | None, str | None]:
    """Our (database, user) pool at PgBouncer, or None and why it could not be read.

    Returns (PoolNumbers, None): cl_active/cl_waiting are client connections linked to a
    server or queued for one, sv_active/sv_idle/sv_used server connections in a
    transaction, ready, or waiting for their check; maxwait_s is how long the oldest
    queued client has waited (maxwait + maxwait_us), 0 when none waits. A pool no client has
    opened yet has no row: every number is 0. On failure: (None, "first line of the error").
    """
    try:
        rows = admin_rows(admin_url, "SHOW POOLS")
    except psycopg2.Error as error:
        return None, describe(error)
    row = next((r for r in rows if (r["database"], r["user"]) == (database, user)), {})
    return PoolNumbers(
        database=database,
        user=user,
        cl_active=row.get("cl_active", 0),
        cl_waiting=row.get("cl_waiting", 0),
        sv_active=row.get("sv_active", 0),
        sv_idle=row.get("sv_idle", 0),
        sv_used=row.get("sv_used", 0),
        maxwait_s=row.get("maxwait", 0) + row.get("maxwait_us", 0) / 1_000_000,
    ), None


def pgbouncer_settings(admin_url: str) -> tuple[PoolerSettings | None, str | None]:
    """PgBouncer's SHOW CONFIG numbers and SHOW DATABASES rows, or None and why not.

    config maps each name of NUMERIC_SETTINGS (default_pool_size, max_client_conn,
    query_wait_timeout, max_db_connections, …) to its value; databases maps each database
    name to its SHOW DATABASES row (pool_size, reserve_pool, max_connections, paused, …).
    """
    try:
        config = {row["key"]: row["value"] for row in admin_rows(admin_url, "SHOW CONFIG")}
        databases = {row["name"]: row for row in admin_rows(admin_url, "SHOW DATABASES")}
    except psycopg2.Error as error:
        return None, describe(error)
    numbers = {name: float(config[name]) for name in NUMERIC_SETTINGS if name in config}
    return PoolerSettings(numbers, databases), None
