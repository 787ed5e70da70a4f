"""Passwords and bearer tokens: slow hashes for one, SHA-256 of 32 random bytes for the other."""

import functools
import hashlib
import secrets
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from app.config import app_settings
from app.models import ApiToken, User
from app.models.base import utcnow

PASSWORD_METHOD = "scrypt"
TOKEN_BYTES = 32


def hash_password(password: str) -> str:
    """A salted scrypt hash of password."""
    return generate_password_hash(password, method=PASSWORD_METHOD)


@functools.cache
def decoy_hash() -> str:
    """A hash to check when the email is unknown, so a miss costs as long as a wrong password."""
    return hash_password("decoy password")


def password_matches(user: User | None, password: str) -> bool:
    """Whether password is user's, taking as long when there is no such user."""
    if user is None:
        check_password_hash(decoy_hash(), password)
        return False
    return check_password_hash(user.password_hash, password)


def token_digest(token: str) -> str:
    """The SHA-256 hex digest under which a token is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(session: Session, user: User) -> tuple[str, datetime]:
    """Create a token for user; return it (shown once, never stored) and its expiry."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    expires_at = utcnow() + timedelta(seconds=app_settings().token_ttl)
    session.add(ApiToken(user=user, token_hash=token_digest(token), expires_at=expires_at))
    return token, expires_at


def find_live_token(session: Session, token: str) -> ApiToken | None:
    """The stored token for a presented one, unless it is unknown, expired or revoked."""
    return session.scalar(
        sa.select(ApiToken).where(
            ApiToken.token_hash == token_digest(token),
            ApiToken.revoked_at.is_(None),
            ApiToken.expires_at > utcnow(),
        )
    )


def revoke_other_tokens(session: Session, user: User, keep: ApiToken) -> None:
    """Revoke every live token of user except keep (after a password change)."""
    session.execute(
        sa.update(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.id != keep.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def find_user_by_email(session: Session, email: str) -> User | None:
    """The user with this email, given as normalize_email gives it (the schemas do)."""
    return session.scalar(sa.select(User).where(User.email == email))
