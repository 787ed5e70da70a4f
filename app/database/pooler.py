"""What changes behind PgBouncer in transaction mode (DB_POOLER=pgbouncer).

A connection of ours is then a client connection to PgBouncer, which lends a server
connection for each transaction. So:
- the server limits travel with each transaction (timeouts.py), never as session settings;
- a lost connection says nothing about the others (PgBouncer keeps them while the server
  restarts behind it), so the pool does not throw them all away as it would on a server;
- PgBouncer ends a client that waited longer than its query_wait_timeout for a server
  connection by closing it, which psycopg2 reports as a lost connection with no SQLSTATE.
  A statement that lost its connection after waiting at least QUEUE_WAIT_FLOOR_S is
  reported as that queue timeout (503 database_busy). A server that dies under a
  statement running that long is reported the same way; both answer 503 + Retry-After.
"""

import time
from typing import Any

from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine

from app.config import Settings
from app.database.timeouts import scope_timeouts_to_transactions

# deploy/pgbouncer.ini's query_wait_timeout is at least this long.
QUEUE_WAIT_FLOOR_S = 1.0
STARTED_AT = "statement_started_at"


class PoolerQueueTimeout(sa_exc.TimeoutError):
    """PgBouncer gave up waiting for a free server connection for this statement."""


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
    started_at = context.connection.info.get(STARTED_AT) if context.connection else None
    if started_at is not None and time.monotonic() - started_at >= QUEUE_WAIT_FLOOR_S:
        return PoolerQueueTimeout(
            "PgBouncer closed the connection while the statement waited for a server"
        )
    return None


def install_pgbouncer_mode(engine: Engine, settings: Settings) -> None:
    """Make engine safe and truthful on PgBouncer in transaction mode."""
    scope_timeouts_to_transactions(engine, settings)
    event.listen(engine, "before_cursor_execute", note_statement_start)
    event.listen(engine, "after_cursor_execute", note_statement_end)
    event.listen(engine, "handle_error", keep_other_connections)
