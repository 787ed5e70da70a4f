"""The server's statement and idle-in-transaction timeouts, on every statement we send.

Straight to PostgreSQL they travel once, as startup options of each connection (`-c …`),
and cost nothing after. PgBouncer in transaction mode refuses that startup parameter, and
a session-level SET would stay on the server connection for whichever client gets it
next. So behind PgBouncer the first statement of every transaction carries the settings
as SET LOCAL, in the same round trip: a statement in autocommit runs, with its SET LOCAL,
as one implicit transaction, and a transaction keeps them until it ends.
"""

from typing import Any

import sqlalchemy as sa
from psycopg2.extensions import TRANSACTION_STATUS_IDLE
from sqlalchemy import event
from sqlalchemy.engine import Engine

from app.database.describe import describe

# Each server setting we rely on, and the variable that sets it.
SERVER_SETTINGS = {
    "statement_timeout": "DB_STATEMENT_TIMEOUT",
    "idle_in_transaction_session_timeout": "DB_IDLE_IN_TRANSACTION_TIMEOUT",
}


def server_settings(settings: dict[str, Any]) -> dict[str, int]:
    """The server-side limits every statement of ours runs under, in milliseconds."""
    return {name: settings[variable] for name, variable in SERVER_SETTINGS.items()}


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


def read_effective_settings(engine: Engine) -> dict[str, int]:
    """The limits a statement of engine's really runs under, in milliseconds, as the server says."""
    names = list(SERVER_SETTINGS)
    columns = ", ".join(
        f"(SELECT setting::int FROM pg_settings WHERE name = '{name}')" for name in names
    )
    with engine.connect() as connection:
        row = connection.exec_driver_sql(f"SELECT {columns}").one()
    return dict(zip(names, row, strict=True))


def settings_mismatches(engine: Engine, settings: dict[str, Any]) -> list[str]:
    """Each limit the server applies differently from our settings, in words; [] when all hold."""
    wanted = server_settings(settings)
    effective = read_effective_settings(engine)
    return [
        f"{name} is {effective[name]} ms on the server, not {SERVER_SETTINGS[name]} {wanted[name]}"
        for name in SERVER_SETTINGS
        if effective[name] != wanted[name]
    ]


def settings_warnings(engine: Engine, settings: dict[str, Any]) -> list[str]:
    """What start-up and db-info warn about the limits: mismatches, or that none could be read."""
    if engine.dialect.name != "postgresql":
        return []
    try:
        return settings_mismatches(engine, settings)
    except sa.exc.SQLAlchemyError as error:
        return [f"server settings not checked: {describe(error)}"]
