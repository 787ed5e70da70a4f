"""How views write: one transaction per unit of work, committed or rolled back."""

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from app.extensions import db

log = logging.getLogger(__name__)


@contextmanager
def transaction() -> Iterator[Session]:
    """Commit the request's session when the block succeeds, roll it back when it raises."""
    session = db.session
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise


def remove_session(_exception: BaseException | None = None) -> None:
    """End the request's session, even when the server dropped its connection meanwhile.

    The rollback that closing a session sends fails on a connection the server closed
    (a restart, a killed backend) after the view had answered; raised from a teardown,
    it would replace that answer with gunicorn's 500 page. SQLAlchemy has already
    invalidated the connection, and a second remove() hands it back to the pool.
    A request that never used the session (the hot reads) has none to remove.
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
