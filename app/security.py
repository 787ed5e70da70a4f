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


def issue_token(session: Session, user: User) -> tuple[str, datetime] | None:
    """Create a token for user; return it (shown once, never stored) and its expiry.

    None when user's password is no longer the one checked: a sign-in that raced a
    password change must not outlive it. The token is inserted only from user's row with
    that password, share-locked until the commit, so a change either waits for the token
    and then revokes it, or committed first and leaves no row to insert from (the profile
    PATCH writes the password before it revokes tokens).
    """
    token = secrets.token_urlsafe(TOKEN_BYTES)
    expires_at = utcnow() + timedelta(seconds=app_settings().token_ttl)
    with_the_checked_password = (
        sa.select(
            User.id,
            sa.literal(token_digest(token), ApiToken.token_hash.type),
            sa.literal(expires_at, ApiToken.expires_at.type),
        )
        .where(User.id == user.id, User.password_hash == user.password_hash)
        .with_for_update(read=True)
    )
    inserted = session.execute(
        sa.insert(ApiToken).from_select(
            ["user_id", "token_hash", "expires_at"], with_the_checked_password
        )
    )
    return (token, expires_at) if inserted.rowcount == 1 else None


def find_live_token(session: Session, token: str) -> ApiToken | None:
    """The stored token for a presented one, unless it is unknown, expired or revoked."""
    return session.scalar(
        sa.select(ApiToken).where(
            ApiToken.token_hash == token_digest(token),
            ApiToken.revoked_at.is_(None),
            ApiToken.expires_at > utcnow(),
        )
    )


def revoke_tokens(session: Session, user: User, keep: ApiToken | None = None) -> None:
    """Revoke every live token of user, except keep (after a password change) if given."""
    statement = sa.update(ApiToken).where(
        ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None)
    )
    if keep is not None:
        statement = statement.where(ApiToken.id != keep.id)
    session.execute(statement.values(revoked_at=utcnow()))


def find_user_by_email(session: Session, email: str) -> User | None:
    """The user with this email, given as normalize_email gives it (the schemas do)."""
    return session.scalar(sa.select(User).where(User.email == email))
