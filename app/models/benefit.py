"""Member benefits: percent discounts an order can name by code."""

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import Timestamps, UtcDateTime


class Benefit(Timestamps, db.Model):
    """A discount for one service (or every service when service_id is null)."""

    __tablename__ = "benefits"
    __table_args__ = (
        sa.CheckConstraint("discount_percent BETWEEN 0 AND 100", name="discount_percent_range"),
        sa.CheckConstraint(
            "valid_from IS NULL OR valid_until IS NULL OR valid_from < valid_until",
            name="validity_window_ordered",
        ),
        sa.Index("uq_benefits_lower_code", sa.func.lower(sa.text("code")), unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(50))
    title: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    discount_percent: Mapped[int] = mapped_column(sa.SmallInteger)
    service_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("services.id", ondelete="RESTRICT"), index=True
    )
    active: Mapped[bool] = mapped_column(default=True, server_default=sa.true())
    valid_from: Mapped[datetime | None] = mapped_column(UtcDateTime)
    valid_until: Mapped[datetime | None] = mapped_column(UtcDateTime)

    def applies(self, service_id: int, at: datetime) -> bool:
        """Whether an order for service_id placed at `at` may use this benefit."""
        return (
            self.active
            and self.service_id in (None, service_id)
            and (self.valid_from is None or self.valid_from <= at)
            and (self.valid_until is None or at < self.valid_until)
        )


def code_is(code: str) -> sa.ColumnElement[bool]:
    """Benefit.code equals code whatever its case, lowered by the database on both sides.

    As its unique index lowers it, so what the index holds apart a lookup holds apart too.
    """
    return sa.func.lower(Benefit.code) == sa.func.lower(code)
