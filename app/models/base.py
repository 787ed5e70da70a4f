"""What every table shares: UTC timestamps, and inserts that may find their key taken."""

from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

Row = TypeVar("Row")


class UtcDateTime(sa.types.TypeDecorator):
    """A timezone-aware datetime in UTC on every backend (SQLite keeps no zone of its own)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        """Store UTC."""
        return value.astimezone(UTC) if value is not None and value.tzinfo else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        """Read back an aware datetime in UTC, whatever the server's TimeZone setting.

        PostgreSQL answers in the session's TimeZone, whose offsets for old dates can have
        seconds (local mean time), which not every JSON writer keeps; SQLite drops the zone.
        """
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def utc_timestamp(moment: datetime | None = None, timespec: str = "auto") -> str:
    """moment (by default now) in UTC, as ISO 8601 ending in Z."""
    moment = utcnow() if moment is None else moment.astimezone(UTC)
    return moment.isoformat(timespec=timespec).replace("+00:00", "Z")


class Timestamps:
    """created_at and updated_at columns, kept by the ORM in UTC."""

    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


def insert_unless_taken(
    session: Session, model: type[Row], unique_columns: list[str], values: dict[str, Any]
) -> Row | None:
    """Insert a row of model and return it; None when its unique columns are taken already.

    `INSERT … ON CONFLICT DO NOTHING RETURNING`: a racing insert of the same key is waited
    for, then skipped without an error. A unique violation instead makes PostgreSQL log the
    whole statement, values and all (psycopg2 sends them inside it). SQLite, for
    development, has the same clause.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(model)
        .values(**values)
        .on_conflict_do_nothing(index_elements=unique_columns)
        .returning(model)
    )
    return session.scalar(statement)
