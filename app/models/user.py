"""People who sign in, and the bearer tokens they sign in with."""

import unicodedata
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import Timestamps, UtcDateTime, utcnow

CUSTOMER = "customer"
ADMIN = "admin"
ROLES = (CUSTOMER, ADMIN)


def normalize_email(email: str) -> str:
    """An email as it is stored and compared: trimmed, composed (NFC) and in lower case.

    Done once, in Python, on the way in; the database compares exactly. Python's lower()
    and PostgreSQL's differ beyond ASCII (`İ`), so lowering on both sides lost accounts.
    """
    return unicodedata.normalize("NFC", email.strip()).lower()


class User(Timestamps, db.Model):
    """A customer or an admin; the email is stored normalised (normalize_email), and unique."""

    __tablename__ = "users"
    __table_args__ = (sa.CheckConstraint(f"role IN {ROLES}", name="role_known"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(256))
    name: Mapped[str] = mapped_column(sa.String(200))
    phone: Mapped[str | None] = mapped_column(sa.String(32))
    role: Mapped[str] = mapped_column(sa.String(20), default=CUSTOMER, server_default=CUSTOMER)

    @property
    def is_admin(self) -> bool:
        """Whether the user may manage the catalogue and every order."""
        return self.role == ADMIN


class ApiToken(db.Model):
    """A bearer token, stored only as its SHA-256 hash, valid until it expires or is revoked."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    user: Mapped[User] = relationship(lazy="joined")
