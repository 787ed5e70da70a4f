"""Reads for the hot GET routes: one cached Core statement, a row mapping, no ORM objects.

Session.get builds ORM state and an identity-map entry for an object the response
serialises and drops at once; on a one-row GET that machinery took more time than the
query (README, "Performance"). A row mapping dumps through the same response schema, whose
fields are the allow-list, so what a client sees does not change.
"""

import functools

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping

from app.extensions import db


@functools.cache
def row_by_id_statement(table: sa.Table) -> sa.Select:
    """SELECT table's columns by id, built once so SQLAlchemy keys its cache once too."""
    return sa.select(*table.c).where(table.c.id == sa.bindparam("row_id"))


def row_by_id(model: type, row_id: int) -> RowMapping | None:
    """The row of model's table with this id, read through the request's session."""
    statement = row_by_id_statement(model.__table__)
    return db.session.execute(statement, {"row_id": row_id}).mappings().one_or_none()
