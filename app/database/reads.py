"""Reads for the hot GET routes: one cached Core statement, a row mapping, no ORM objects.

Session.get builds ORM state and an identity-map entry for an object the response
serialises and drops at once; on a one-row GET that machinery took more time than the
query (README, "Performance"). A row mapping dumps through the same response schema, whose
fields are the allow-list, so what a client sees does not change.

A read that is the request's first statement runs outside a transaction (`read_connection`,
`untransacted`): psycopg2 would otherwise send BEGIN before it and the pool ROLLBACK after
it, three round trips for one row where the floor pays one.
"""

import functools
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from psycopg2.extensions import TRANSACTION_STATUS_IDLE
from sqlalchemy.engine import Connection, RowMapping

from app.extensions import db


@functools.cache
def row_by_id_statement(table: sa.Table) -> sa.Select:
    """SELECT table's columns by id, built once so SQLAlchemy keys its cache once too."""
    return sa.select(*table.c).where(table.c.id == sa.bindparam("row_id"))


def row_by_id(model: type, row_id: int) -> RowMapping | None:
    """The row of model's table with this id, read through the request's session."""
    statement = row_by_id_statement(model.__table__)
    with read_connection() as connection:
        return connection.execute(statement, {"row_id": row_id}).mappings().one_or_none()


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
