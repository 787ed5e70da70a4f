"""Request bodies: JSON only, and small, refused before any view reads them."""

from flask import current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from app.errors import ApiError

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def require_small_json_body() -> None:
    """413 for a body over MAX_CONTENT_LENGTH, 415 for a body that is not JSON."""
    if request.method not in BODY_METHODS or not request.path.startswith("/api/"):
        return
    if (request.content_length or 0) > current_app.config["MAX_CONTENT_LENGTH"]:
        raise RequestEntityTooLarge()
    if (carries_body() or request.mimetype) and not request.is_json:
        raise ApiError.unsupported_media_type()


def carries_body() -> bool:
    """Whether the request has a body, sized or chunked."""
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    return chunked or (request.content_length or 0) > 0
