"""Services customers can order."""

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import Timestamps


class Service(Timestamps, db.Model):
    """Something a customer can order, at a price in cents."""

    __tablename__ = "services"
    __table_args__ = (sa.CheckConstraint("price_cents >= 0", name="price_not_negative"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200), index=True)
    description: Mapped[str] = mapped_column(sa.Text, default="")
    price_cents: Mapped[int] = mapped_column(sa.BigInteger)
    active: Mapped[bool] = mapped_column(default=True, server_default=sa.true())
