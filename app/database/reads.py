"""Reads for the hot GET routes: one cached statement, a plain mapping, no ORM objects.

Session.get builds ORM state and an identity-map entry for an object the response
serialises and drops at once; on a one-row GET that machinery took more time than the
query (README, "Performance"). A mapping dumps through the same response schema, whose
fields are the allow-list, so what a client sees does not change.

A read that is the request's first statement runs outside a transaction (`read_connection`,
`untransacted`): psycopg2 would otherwise send BEGIN before it and the pool ROLLBACK after
it, three round trips for one row where the floor pays one.

GET by id goes one step lower still, on psycopg2 (`fetch_row`): Core's Connection and
execution context cost more CPU than the whole round trip to the server (unless statement
logging or a Core listener is on, which would miss it: `takes_driver_path`). It borrows the
connection from the same pool (so pool limits, timeouts and pre-ping apply), sends the
statement SQLAlchemy compiled, converts values with the columns' own result processors,
and handles a driver error as Core does: a lost connection is invalidated with every
connection opened before it, and the error is raised as SQLAlchemy's, so the 503 mapping
(app/errors.py) sees no difference.
"""

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from psycopg2.extensions import TRANSACTION_STATUS_IDLE
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Dialect, Engine

from app.database import pool_engine
from app.extensions import db


@functools.cache
def row_by_id_statement(table: sa.Table) -> sa.Select:
    """SELECT table's columns by id, built once so SQLAlchemy keys its cache once too."""
    return sa.select(*table.c).where(table.c.id == sa.bindparam("row_id"))


def row_by_id(model: type, row_id: int) -> dict[str, Any] | None:
    """The row of model's table with this id as a mapping of column names, or None."""
    statement = row_by_id_statement(model.__table__)
    parameters = {"row_id": row_id}
    engine = pool_engine()
    if takes_driver_path(engine):
        return fetch_row(engine, compiled_read(statement, engine.dialect), parameters)
    with read_connection() as connection:
        return connection.execute(statement, parameters).mappings().one_or_none()


def takes_driver_path(engine: Engine) -> bool:
    """Whether a read may skip Core: psycopg2, no session connection, nobody watching Core.

    Statement logging (echo) and execute or error listeners (tracing, query counters)
    see only what passes through Core, so once any is set every read goes through it.
    Core's own flags tell: an engine or dialect that ever had a listener has _has_events
    (when the flags cannot be read, the read goes through Core).
    """
    return (
        engine.dialect.driver == "psycopg2"
        and not engine.echo
        and not getattr(engine, "_has_events", True)
        and not getattr(engine.dialect, "_has_events", True)
        and not session_holds_connection()
    )


@dataclass(frozen=True)
class CompiledRead:
    """A SELECT as the driver takes it, and how to turn its rows into column mappings."""

    sql: str
    columns: tuple[str, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]

    def mapping(self, row: tuple) -> dict[str, Any]:
        """The row as SQLAlchemy would return it: each value through its type's processor."""
        return {
            name: value if process is None else process(value)
            for name, process, value in zip(self.columns, self.processors, row, strict=True)
        }


@functools.cache
def compiled_read(statement: sa.Select, dialect: Dialect) -> CompiledRead:
    """Compile statement once for dialect, with each column's result processor."""
    columns = statement.selected_columns
    return CompiledRead(
        sql=str(statement.compile(dialect=dialect)),
        columns=tuple(column.name for column in columns),
        processors=tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        ),
    )


def fetch_row(engine: Engine, read: CompiledRead, parameters: dict[str, Any]):
    """One row (a mapping) or None, on a pooled psycopg2 connection, outside a transaction."""
    dialect = engine.dialect
    try:
        pooled = engine.raw_connection()
    except dialect.loaded_dbapi.Error as error:
        lost = dialect.is_disconnect(error, None, None)
        raise as_sqlalchemy_error(error, engine, None, None, lost) from error
    try:
        row = fetch_untransacted(pooled.dbapi_connection, read.sql, parameters)
    except dialect.loaded_dbapi.Error as error:
        lost = dialect.is_disconnect(error, pooled.dbapi_connection, None)
        if lost:
            # What Core does on a disconnect: drop this connection and recycle those
            # opened before it, which the same server failure most likely broke too.
            engine.pool._invalidate(pooled, error)
        raise as_sqlalchemy_error(error, engine, read.sql, parameters, lost) from error
    finally:
        pooled.close()
    return None if row is None else read.mapping(row)


def fetch_untransacted(dbapi_connection, sql: str, parameters: dict[str, Any]):
    """Execute sql in autocommit and fetch one row; transaction mode is restored after."""
    dbapi_connection.autocommit = True
    try:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(sql, parameters)
            return cursor.fetchone()
    finally:
        if not dbapi_connection.closed:
            dbapi_connection.autocommit = False


def as_sqlalchemy_error(error, engine: Engine, sql, parameters, lost: bool) -> sa_exc.DBAPIError:
    """The driver's error wrapped as Core wraps it (OperationalError for psycopg2's, etc.)."""
    return sa_exc.DBAPIError.instance(
        sql,
        parameters,
        error,
        engine.dialect.loaded_dbapi.Error,
        hide_parameters=engine.hide_parameters,
        connection_invalidated=lost,
        dialect=engine.dialect,
    )


@contextmanager
def read_connection() -> Iterator[Connection]:
    """A connection for one single-statement read, outside a transaction when none is open.

    The request's session lends its own connection once it holds one (so a request never
    holds two: a second checkout could wait on a pool its first one helps exhaust), and
    when it is bound to one (the tests' outer transaction). Otherwise the read borrows a
    pooled connection for the block alone, which skips building the session's transaction.
    """
    if session_holds_connection():
        with untransacted(db.session.connection()) as connection:
            yield connection
        return
    with db.engine.connect() as connection, untransacted(connection):
        yield connection


def session_holds_connection() -> bool:
    """Whether the request's session is bound to a connection or has begun on one.

    Asked without creating a session: a request that needs none should not build one.
    """
    if db.session.session_factory.kw.get("bind") is not None:
        return True
    return db.session.registry.has() and db.session().in_transaction()


@contextmanager
def untransacted(connection: Connection) -> Iterator[Connection]:
    """Run the block's statements in autocommit when no transaction is open yet; else as is.

    For single-statement reads only: each statement commits on its own, so a block that
    writes, locks (FOR UPDATE) or needs two statements to agree must not use it. psycopg2's
    autocommit is a client-side switch (no round trip); it is switched back on the way
    out, whatever happens, so the session's next statement opens a transaction as always.
    Inside a transaction (a write in progress, or the tests' outer transaction) the block
    simply runs in it. Drivers other than psycopg2 always run the block as is.
    """
    dbapi_connection = connection.connection.dbapi_connection
    if not is_idle_psycopg2(dbapi_connection):
        yield connection
        return
    dbapi_connection.autocommit = True
    try:
        yield connection
    finally:
        # A lost connection is closed and already invalidated: nothing to switch back.
        if not dbapi_connection.closed:
            dbapi_connection.autocommit = False


def is_idle_psycopg2(dbapi_connection) -> bool:
    """Whether this is a psycopg2 connection in transaction mode, with no transaction open."""
    status = getattr(dbapi_connection, "get_transaction_status", None)
    if status is None or dbapi_connection.autocommit or dbapi_connection.closed:
        return False
    return status() == TRANSACTION_STATUS_IDLE
