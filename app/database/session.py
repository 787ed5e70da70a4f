"""How views use the database: reads on a borrowed connection, writes in one transaction.

The engine runs in autocommit (engine.py), so one rule decides where a statement runs:
inside `transaction()` it belongs to that unit of work, which commits or rolls back as a
whole; anywhere else it commits on its own, as a lone read does. `reading()` marks a
read's block (`reading_rows()` one that wants rows, not objects): when it ends, the
connection goes back to the pool, so a request holds none
while it hashes a password, waits for a slow client's body or renders its response.
"""

import functools
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from app.extensions import db

log = logging.getLogger(__name__)
# Where a session notes that a transaction() block is open.
UNIT_OF_WORK = "unit_of_work"


@contextmanager
def transaction() -> Iterator[Session]:
    """One unit of work: commit when the block succeeds, roll back when it raises.

    The session's earlier reads end first (their connection goes back to the pool), and
    the unit takes a connection in the server's own isolation level, so BEGIN … COMMIT
    wraps exactly the block's statements.
    """
    session = db.session()
    if session.info.get(UNIT_OF_WORK):  # Nested: the outer unit commits.
        yield session
        return
    release(session)
    session.info[UNIT_OF_WORK] = True
    try:
        session.connection(
            execution_options={"isolation_level": isolation_of_transactions(db.engine)}
        )
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.info[UNIT_OF_WORK] = False


@contextmanager
def reading() -> Iterator[Session]:
    """The request's session for a block of reads; its connection is returned at the end.

    Inside a transaction() the reads are part of it, and nothing is returned early.
    """
    session = db.session()
    if session.info.get(UNIT_OF_WORK):
        yield session
        return
    try:
        yield session
    except BaseException:
        # A failed read may have lost its connection: only a rollback lets go of it.
        session.rollback()
        raise
    release(session)


@contextmanager
def reading_rows() -> Iterator[Connection]:
    """A Core connection for a block of reads that return rows, not ORM objects.

    The same rule as reading(): inside a transaction() the reads are part of it; elsewhere
    they commit on their own, on a connection borrowed for the block. It skips the
    session's own bookkeeping, which costs more than a one-row query (README,
    "Performance").
    """
    # Asking the registry first: a request that only reads rows never makes a session.
    if db.session.registry.has():
        session = db.session()
        if session.in_transaction():  # A unit of work, or objects loaded since the last release.
            yield session.connection()
            return
    with db.engine.connect() as connection:
        yield connection


def release(session: Session) -> None:
    """Give the session's connection back to the pool, keeping its objects loaded.

    In autocommit, ending the session's transaction sends nothing to the server; objects
    stay usable because the session does not expire them on commit (init_app), and a
    later lazy load borrows a connection again.
    """
    if session.in_transaction():
        session.commit()


@functools.cache
def isolation_of_transactions(engine: Engine) -> str:
    """The isolation level a new connection has on engine's server (READ COMMITTED by default).

    Asked once per engine: SQLAlchemy learns it when the engine first connects.
    """
    with engine.connect() as connection:
        return connection.default_isolation_level


def remove_session(_exception: BaseException | None = None) -> None:
    """End the request's session, even when the server dropped its connection meanwhile.

    The rollback that closing a session sends fails on a connection the server closed
    (a restart, a killed backend) after the view had answered; raised from a teardown,
    it would replace that answer with gunicorn's 500 page. SQLAlchemy has already
    invalidated the connection, and a second remove() hands it back to the pool.
    A request that never used the session (a row read) has none to remove.
    """
    if not db.session.registry.has():
        return
    try:
        db.session.remove()
    except sa_exc.DBAPIError as error:
        if not error.connection_invalidated:
            raise
        log.warning("connection lost before the session ended: %s", str(error).splitlines()[0])
        db.session.remove()
