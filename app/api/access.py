"""Who is calling: bearer tokens in, the signed-in token and user out."""

import re

from flask import g, request

from app.database import reading
from app.errors import ApiError
from app.models import ApiToken, User
from app.security import find_live_token

BEARER_SCHEME = "bearerAuth"
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{20,128}")


def presented_token() -> str:
    """The token of an `Authorization: Bearer <token>` header, or 401."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not TOKEN_PATTERN.fullmatch(token.strip()):
        raise ApiError.unauthorized()
    return token.strip()


def authenticate() -> ApiToken:
    """The caller's live token, with its user: unknown, expired and revoked ones answer 401.

    A read of its own, so a request that then waits for its body holds no connection.
    """
    presented = presented_token()
    with reading() as session:
        token = find_live_token(session, presented)
    if token is None:
        raise ApiError.unauthorized("the token is invalid, expired or revoked")
    return token


def current_token() -> ApiToken:
    """The token the signed-in caller presented."""
    return g.api_token


def current_user() -> User:
    """The signed-in caller."""
    return g.api_token.user
