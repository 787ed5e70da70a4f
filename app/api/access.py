"""Who is calling: bearer tokens in, the signed-in token and user out."""

import re

from flask import g, request

from app.database.reads import untransacted
from app.errors import ApiError
from app.extensions import db
from app.models import ApiToken, User
from app.security import find_live_token

BEARER_SCHEME = "bearerAuth"
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{20,128}")
READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def presented_token() -> str:
    """The token of an `Authorization: Bearer <token>` header, or 401."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not TOKEN_PATTERN.fullmatch(token.strip()):
        raise ApiError.unauthorized()
    return token.strip()


def authenticate() -> ApiToken:
    """The caller's live token: unknown, expired and revoked ones answer 401."""
    token = look_up(presented_token())
    if token is None:
        raise ApiError.unauthorized("the token is invalid, expired or revoked")
    return token


def look_up(presented: str) -> ApiToken | None:
    """The live token; a read-only request looks it up outside a transaction (reads.py).

    A request that writes keeps the lookup inside its transaction, as it always was.
    """
    if request.method not in READ_ONLY_METHODS:
        return find_live_token(db.session, presented)
    with untransacted(db.session.connection()):
        return find_live_token(db.session, presented)


def current_token() -> ApiToken:
    """The token the signed-in caller presented."""
    return g.api_token


def current_user() -> User:
    """The signed-in caller."""
    return g.api_token.user
