"""Orders, priced by the server, and the idempotency keys that guard their creation."""

from datetime import datetime
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import Timestamps, UtcDateTime, utcnow

PENDING, CONFIRMED, COMPLETED, CANCELLED = "pending", "confirmed", "completed", "cancelled"
STATUSES = (PENDING, CONFIRMED, COMPLETED, CANCELLED)


class Order(Timestamps, db.Model):
    """One service ordered by one user, with the prices it was sold at.

    `version` is SQLAlchemy's version counter: every UPDATE checks and bumps it, so a
    write based on a stale read matches no row and fails instead of overwriting.
    """

    __tablename__ = "orders"
    __table_args__ = (
        sa.CheckConstraint("quantity > 0", name="quantity_positive"),
        sa.CheckConstraint("unit_price_cents >= 0", name="unit_price_not_negative"),
        sa.CheckConstraint("discount_percent BETWEEN 0 AND 100", name="discount_percent_range"),
        sa.CheckConstraint(
            "discount_cents >= 0 AND total_cents >= 0", name="discount_and_total_not_negative"
        ),
        sa.CheckConstraint(sa.column("status").in_(STATUSES), name="status_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    service_id: Mapped[int] = mapped_column(
        sa.ForeignKey("services.id", ondelete="RESTRICT"), index=True
    )
    benefit_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("benefits.id", ondelete="RESTRICT"), index=True
    )
    benefit_code: Mapped[str | None] = mapped_column(sa.String(50))
    quantity: Mapped[int]
    unit_price_cents: Mapped[int] = mapped_column(sa.BigInteger)
    discount_percent: Mapped[int] = mapped_column(sa.SmallInteger, default=0, server_default="0")
    discount_cents: Mapped[int] = mapped_column(sa.BigInteger)
    total_cents: Mapped[int] = mapped_column(sa.BigInteger)
    status: Mapped[str] = mapped_column(sa.String(20), default=PENDING, server_default=PENDING)
    notes: Mapped[str] = mapped_column(sa.Text, default="")
    version: Mapped[int] = mapped_column(default=1, server_default="1")

    __mapper_args__: ClassVar[dict[str, Any]] = {"version_id_col": version}


class IdempotencyKey(db.Model):
    """The first order a user created with an Idempotency-Key, and what that request asked."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (sa.UniqueConstraint("user_id", "key", name="uq_idempotency_keys_user_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(sa.String(255))
    request_fingerprint: Mapped[str] = mapped_column(sa.String(64))
    order_id: Mapped[int] = mapped_column(
        sa.ForeignKey("orders.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    order: Mapped[Order] = relationship()
