"""The server's statement and idle-in-transaction timeouts, on every statement we send.

Straight to PostgreSQL they travel once, as startup options of each connection (`-c …`),
and cost nothing after. PgBouncer in transaction mode refuses that startup parameter, and
a session-level SET would stay on the server connection for whichever client gets it
next. So behind PgBouncer the first statement of every transaction carries the settings
as SET LOCAL, in the same round trip: a statement in autocommit runs, with its SET LOCAL,
as one implicit transaction, and a transaction keeps them until it ends.
"""

from typing import Any

from psycopg2.extensions import TRANSACTION_STATUS_IDLE
from sqlalchemy import event
from sqlalchemy.engine import Engine


def server_settings(settings: dict[str, Any]) -> dict[str, int]:
    """The server-side limits every statement of ours runs under."""
    return {
        "statement_timeout": settings["DB_STATEMENT_TIMEOUT"],
        "idle_in_transaction_session_timeout": settings["DB_IDLE_IN_TRANSACTION_TIMEOUT"],
    }


def startup_options(settings: dict[str, Any]) -> str:
    """The limits as libpq's `options` startup parameter, for a direct connection."""
    return " ".join(f"-c {name}={value}" for name, value in server_settings(settings).items())


def transaction_local_prefix(settings: dict[str, Any]) -> str:
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


def scope_timeouts_to_transactions(engine: Engine, settings: dict[str, Any]) -> None:
    """Prefix each transaction's first statement on engine with SET LOCAL of our limits."""
    prefix = transaction_local_prefix(settings)

    @event.listens_for(engine, "before_cursor_execute", retval=True)
    def add_limits(connection, cursor, statement, parameters, context, executemany):
        if starts_a_transaction(cursor.connection):
            statement = prefix + statement
        return statement, parameters
