"""How the app uses its session: reads one statement each, writes one transaction each.

On PostgreSQL the request pool's connections run in autocommit (engine.py), so a read is
one statement and one round trip, with no BEGIN before it nor ROLLBACK after. A write is
a transaction all the same, wherever it is written: the session's first flush, an INSERT,
UPDATE or DELETE it executes, or the start of a `transaction()` block opens one on its
connection, and the session's commit or rollback ends it. So `db.session.add(a);
db.session.flush(); db.session.add(b); db.session.commit()` commits a and b together or
neither, in a view, a command or `flask shell`. Back in the pool, the connection returns
to autocommit.

`reading()` marks a block of reads that the request then stops querying for a while
(a password hash, a slow body): when it ends, the connection goes back to the pool.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from psycopg2.extensions import TRANSACTION_STATUS_IDLE
from psycopg2.extensions import connection as Psycopg2Connection
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction

from app.database.describe import describe
from app.extensions import db

log = logging.getLogger(__name__)
# Where a session notes that its current transaction writes, so reads must not end it.
WRITING = "writing"


@contextmanager
def transaction() -> Iterator[Session]:
    """One unit of work: commit when the block succeeds, roll back when it raises.

    Reads made before it end first, so BEGIN … COMMIT wraps exactly the block's
    statements, reads included (a `FOR UPDATE` holds its lock until the commit).
    """
    session = db.session()
    if session.info.get(WRITING):  # Nested: the outer unit commits.
        yield session
        return
    release(session)
    begin_writing(session)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise


@contextmanager
def reading() -> Iterator[Session]:
    """The request's session for a block of reads; its connection is returned at the end.

    Inside a unit of work the reads are part of it, and nothing is returned early.
    """
    session = db.session()
    if session.info.get(WRITING):
        yield session
        return
    try:
        yield session
    except BaseException:
        # A failed read may have lost its connection: only a rollback lets go of it.
        session.rollback()
        raise
    release(session)


def release(session: Session) -> None:
    """Give the session's connection back to the pool, keeping its objects loaded.

    Outside a unit of work, ending the session's transaction sends nothing to the server
    (its statements committed as they ran); objects stay usable because the session does
    not expire them on commit (extensions.py), and a later lazy load borrows a connection
    again.
    """
    if session.in_transaction():
        session.commit()


def begin_writing(session: Session) -> None:
    """Make the session's transaction a server transaction, from its next statement on.

    psycopg2 out of autocommit sends BEGIN before the next statement and COMMIT or
    ROLLBACK when the session ends the transaction; flipping the flag sends nothing.
    """
    session.info[WRITING] = True
    dbapi_connection = session.connection().connection.dbapi_connection
    if isinstance(dbapi_connection, Psycopg2Connection) and dbapi_connection.autocommit:
        dbapi_connection.autocommit = False


def write_in_a_transaction(session: Session, _flush_context, _instances) -> None:
    """Before a flush outside transaction(): its writes, and all up to commit, are one."""
    if not session.info.get(WRITING):
        begin_writing(session)


def execute_writes_in_a_transaction(state: ORMExecuteState) -> None:
    """An INSERT, UPDATE or DELETE through the session joins the unit of work as a flush does."""
    if (state.is_insert or state.is_update or state.is_delete) and not state.session.info.get(
        WRITING
    ):
        begin_writing(state.session)


def forget_writing(session: Session, ended: SessionTransaction) -> None:
    """When the session's outermost transaction ends, its next statements are reads again."""
    if ended.parent is None:
        session.info.pop(WRITING, None)


def back_to_autocommit(dbapi_connection, _connection_record) -> None:
    """A connection checked in after a write reads in autocommit again.

    The pool has rolled back whatever was left open before this runs; a connection it
    could not reset is closed and is not touched.
    """
    if (
        isinstance(dbapi_connection, Psycopg2Connection)
        and not dbapi_connection.closed
        and not dbapi_connection.autocommit
        and dbapi_connection.get_transaction_status() == TRANSACTION_STATUS_IDLE
    ):
        dbapi_connection.autocommit = True


SESSION_LISTENERS = {
    "before_flush": write_in_a_transaction,
    "do_orm_execute": execute_writes_in_a_transaction,
    "after_transaction_end": forget_writing,
}


def install_unit_of_work(engine: Engine) -> None:
    """Make every session's writes one transaction, and engine's pool read in autocommit."""
    for name, listener in SESSION_LISTENERS.items():
        if not event.contains(Session, name, listener):  # Once for every app of the process.
            event.listen(Session, name, listener)
    event.listen(engine, "checkin", back_to_autocommit)


def remove_session(_exception: BaseException | None = None) -> None:
    """End the request's session, even when the server dropped its connection meanwhile.

    The rollback that closing a session sends fails on a connection the server closed
    (a restart, a killed backend) after the view had answered; raised from a teardown,
    it would replace that answer with gunicorn's 500 page. SQLAlchemy has already
    invalidated the connection, and a second remove() hands it back to the pool.
    """
    try:
        db.session.remove()
    except sa_exc.DBAPIError as error:
        if not error.connection_invalidated:
            raise
        log.warning("connection lost before the session ended: %s", describe(error))
        db.session.remove()
