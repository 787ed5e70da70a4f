"""Request bodies: JSON only, and small, refused before any view reads them; behind a proxy,
read to their end after an answer given before they were read."""

import functools

from flask import Response, current_app, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.wsgi import LimitedStream

from app.errors import ApiError

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
KIB = 1024
# The most each resource's bodies need, by blueprint, with every character sent \u-escaped
# (a profile: 200 + 2 × 128 characters at up to 12 bytes each). The rest: MAX_CONTENT_LENGTH.
BODY_LIMITS = {"auth": 8 * KIB, "users": 8 * KIB, "orders": 32 * KIB}
DRAIN_CHUNK = 64 * KIB


def body_limit() -> int:
    """The largest body this request's route accepts, in bytes."""
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    return min(limit, BODY_LIMITS.get(request.blueprint or "", limit))


def require_small_json_body() -> None:
    """413 for a body over its route's limit, 415 for a body that is not JSON."""
    if request.method not in BODY_METHODS or not request.path.startswith("/api/"):
        return
    request.max_content_length = body_limit()
    if (request.content_length or 0) > request.max_content_length:
        raise RequestEntityTooLarge()
    if (carries_body() or request.mimetype) and not request.is_json:
        raise ApiError.unsupported_media_type()
    if request.content_length is None and carries_body():
        refuse_a_long_unsized_body()


def refuse_a_long_unsized_body() -> None:
    """413 for a chunked body over the route's limit, which werkzeug would cut short.

    request.stream stops at the limit without saying whether more followed; the server's
    own input stream says whether it did. The body read here is kept for the view.
    """
    limit = request.max_content_length
    try:
        more = len(request.get_data(cache=True)) >= limit and request.input_stream.read(1)
    except HTTPException:
        raise
    except Exception as error:  # The server's reader refusing the framing (gunicorn's own types).
        raise ApiError.bad_request("the chunked body could not be read") from error
    if more:
        raise RequestEntityTooLarge()


def carries_body() -> bool:
    """Whether the request has a body, sized or chunked."""
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    return chunked or (request.content_length or 0) > 0


def read_the_rest_after_answering(response: Response) -> Response:
    """Once the answer is sent, read what is left of a sized body (after_request).

    An answer given before the body was read (401 before parsing, 413 over the route's
    limit, 404) left it unread when gunicorn closed the connection; the kernel then resets
    it, and nginx, still sending the body it buffered, answers 502 instead of our answer.
    Registered only behind a proxy (TRUSTED_PROXY_HOPS, app/api/__init__.py): nginx has
    the whole body, so the rest comes at once, whereas a client reaching gunicorn directly
    could stall it and hold the worker. Bodies over MAX_CONTENT_LENGTH are not read: nginx
    refuses them itself.
    """
    length = request.content_length
    if length and length <= current_app.config["MAX_CONTENT_LENGTH"]:
        stream = LimitedStream(request.input_stream, length)
        response.call_on_close(functools.partial(drain, stream))
    return response


def drain(stream: LimitedStream) -> None:
    """Read what is left of the body, keeping nothing.

    The server's input stops at Content-Length (gunicorn's does); the LimitedStream bounds
    it on any server.
    """
    try:
        while stream.read(DRAIN_CHUNK):
            pass
    except Exception:  # The client went away, or sent less than it said: nothing to do.
        return
