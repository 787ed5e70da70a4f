"""What the catalogue resources (services, benefits) share: fetch, save, change, delete."""

from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from app.database import read_stale_ok, reading, transaction
from app.errors import ApiError


def get_or_404(model: type, row_id: int, resource: str):
    """The row with this id, or the resource's 404: on the primary, for a change to follow."""
    with reading() as session:
        row = session.get(model, row_id)
    return found_or_404(row, resource)


def show_or_404(model: type, row_id: int, resource: str):
    """The row with this id for a GET, perhaps from a replica (read_stale_ok), or 404."""
    return found_or_404(read_stale_ok(lambda session: session.get(model, row_id)), resource)


def found_or_404(row, resource: str):
    """row, or the resource's 404 when there is none."""
    if row is None:
        raise ApiError.not_found(resource)
    return row


def save_new(row):
    """Insert row and commit."""
    with transaction() as session:
        session.add(row)
    return row


def save_changes(row, changes: dict[str, Any]):
    """Set each changed attribute on row and commit."""
    with transaction():
        for name, value in changes.items():
            setattr(row, name, value)
    return row


def delete_unreferenced(row, resource: str) -> None:
    """Delete row, or answer 409 when an order (or benefit) still refers to it.

    The foreign keys are ON DELETE RESTRICT, so the database itself refuses to lose an
    order's history; the client is told to deactivate the row instead.
    """
    try:
        with transaction() as session:
            session.delete(row)
    except sa_exc.IntegrityError:
        raise ApiError.conflict(
            f"{resource} is still referenced; set active to false to withdraw it instead"
        ) from None


def filter_by(statement: sa.Select, query: dict[str, Any], columns: dict[str, Any]) -> sa.Select:
    """Add an equality condition for each filter present in query."""
    for name, column in columns.items():
        if name in query:
            statement = statement.where(column == query[name])
    return statement


def search(statement: sa.Select, query: dict[str, Any], *columns) -> sa.Select:
    """Keep rows where any of columns contains ?q=, case-insensitively."""
    if "q" not in query:
        return statement
    return statement.where(sa.or_(*(c.icontains(query["q"], autoescape=True) for c in columns)))
