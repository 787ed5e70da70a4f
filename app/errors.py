"""One JSON error shape for every failure, and the mapping of exceptions onto it."""

import contextlib
import logging
from typing import Any

from flask import Flask, jsonify
from psycopg2 import errors as pg_errors
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException

from app import request_context
from app.database.deadline import DeadlineExceeded, DeadlineReached, remaining_s
from app.database.describe import describe
from app.database.pool_gate import WouldWaitPastDeadline
from app.extensions import db
from app.metrics import count_error

log = logging.getLogger(__name__)

RETRY_AFTER_S = 1
# A 422 lists at most this many fields, each name cut to this length: a body of a million
# unknown keys gets a short answer, not one larger than itself.
MAX_FIELDS_LISTED = 20
MAX_FIELD_NAME = 64


class ApiError(Exception):
    """A failure the client should see, with its status, code and message."""

    def __init__(self, status: int, code: str, message: str, fields=None, headers=None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.fields, self.headers = fields, headers or {}

    @classmethod
    def bad_request(cls, message: str) -> "ApiError":
        """The request cannot be read at all."""
        return cls(400, "bad_request", message)

    @classmethod
    def not_found(cls, resource: str) -> "ApiError":
        """The resource does not exist, or is not the caller's to see."""
        return cls(404, "not_found", f"{resource} not found")

    @classmethod
    def conflict(cls, message: str) -> "ApiError":
        """The request clashes with the resource's current state."""
        return cls(409, "conflict", message)

    @classmethod
    def forbidden(cls, message: str = "you may not do this") -> "ApiError":
        """The caller is known but lacks the right."""
        return cls(403, "forbidden", message)

    @classmethod
    def unauthorized(cls, message: str = "a valid bearer token is required") -> "ApiError":
        """The caller is not signed in, or their token is not valid."""
        return cls(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})

    @classmethod
    def validation(cls, fields: dict[str, Any], message: str = "the request is not valid"):
        """Input fields are at fault (the first MAX_FIELDS_LISTED of them are listed)."""
        if len(fields) > MAX_FIELDS_LISTED:
            message += f"; {len(fields)} fields are at fault, the first {MAX_FIELDS_LISTED} listed"
        return cls(422, "validation_error", message, fields=bounded(fields))

    @classmethod
    def unsupported_media_type(cls) -> "ApiError":
        """The body is not JSON."""
        return cls(415, "unsupported_media_type", "send the body as application/json")

    @classmethod
    def unavailable(cls, code: str, message: str) -> "ApiError":
        """The database cannot serve now; the client should retry shortly."""
        return cls(503, code, message, headers={"Retry-After": str(RETRY_AFTER_S)})


def bounded(fields: dict[str, Any]) -> dict[str, Any]:
    """The first MAX_FIELDS_LISTED fields, their names cut to MAX_FIELD_NAME characters."""
    listed = list(fields.items())[:MAX_FIELDS_LISTED]
    return {cut(str(name)): messages for name, messages in listed}


def cut(name: str) -> str:
    """name, or its first MAX_FIELD_NAME characters and an ellipsis, always encodable.

    A client's key may hold a lone surrogate ("\\ud800"), which no UTF-8 answer can carry.
    """
    name = name.encode("utf-8", "backslashreplace").decode()
    return name if len(name) <= MAX_FIELD_NAME else name[:MAX_FIELD_NAME] + "…"


def error_response(error: ApiError):
    """Render an ApiError as SPEC's JSON body."""
    count_error(error.code)
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.fields:
        body["fields"] = error.fields
    context = request_context.current()
    body["request_id"] = context.request_id if context else None
    response = jsonify(error=body)
    response.status_code = error.status
    response.headers.update(error.headers)
    return response


def from_http_exception(error: HTTPException) -> ApiError:
    """Map werkzeug's and webargs's HTTP errors onto ApiError."""
    code = (error.name or "error").lower().replace(" ", "_").replace("'", "")
    data = getattr(error, "data", None) or {}
    messages = data.get("messages") or data.get("errors")
    if error.code == 422 and messages:
        return ApiError.validation(flatten_locations(messages))
    headers = dict(data.get("headers") or {})
    if error.code == 405 and error.valid_methods:
        headers["Allow"] = ", ".join(error.valid_methods)
    message = data.get("message") or first_message(messages) or error.description or error.name
    return ApiError(error.code or 500, code, message, headers=headers)


def first_message(messages: dict[str, Any] | None) -> str | None:
    """The first message webargs gave, e.g. "Invalid JSON body." for malformed JSON."""
    for location_errors in (messages or {}).values():
        if isinstance(location_errors, list) and location_errors:
            return str(location_errors[0])
    return None


def flatten_locations(messages: dict[str, Any]) -> dict[str, Any]:
    """webargs groups errors by location (json, query); clients want them by field."""
    fields: dict[str, Any] = {}
    for location_errors in messages.values():
        if isinstance(location_errors, dict):
            fields.update(location_errors)
        else:
            fields.setdefault("_schema", []).extend(location_errors)
    return fields


# A statement the server cancelled this close to the request's deadline ran out of the
# request's time (its SET LOCAL statement_timeout was what was left), not DB_STATEMENT_TIMEOUT.
DEADLINE_CANCEL_SLACK_S = 0.1


def cancelled_at_the_deadline() -> bool:
    """Whether the request's deadline is (about) spent, so a cancel was the deadline's."""
    left = remaining_s()
    return left is not None and left < DEADLINE_CANCEL_SLACK_S


def from_database_error(error: sa_exc.SQLAlchemyError) -> ApiError | None:
    """The 503 a database fault deserves, or None when it is a bug of ours."""
    original = getattr(error, "orig", None)
    if isinstance(error, DeadlineExceeded) or isinstance(original, DeadlineReached):
        return ApiError.unavailable(
            "deadline_exceeded", "the request ran out of time for the database; retry shortly"
        )
    if isinstance(error, WouldWaitPastDeadline):
        return ApiError.unavailable(
            "database_busy", "a database connection would come too late; retry shortly"
        )
    if isinstance(error, sa_exc.TimeoutError):
        return ApiError.unavailable(
            "database_busy", "no database connection is free; retry shortly"
        )
    if isinstance(original, pg_errors.QueryCanceled) and cancelled_at_the_deadline():
        return ApiError.unavailable(
            "deadline_exceeded", "the request ran out of time for the database; retry shortly"
        )
    if isinstance(original, pg_errors.QueryCanceled):
        return ApiError.unavailable(
            "statement_timeout", "the database took too long; retry shortly"
        )
    if isinstance(original, pg_errors.ReadOnlySqlTransaction):
        return ApiError.unavailable(
            "database_read_only", "the database takes no writes now; retry shortly"
        )
    if isinstance(error, sa_exc.DBAPIError) and (
        error.connection_invalidated or isinstance(error, sa_exc.OperationalError)
    ):
        return ApiError.unavailable(
            "database_unavailable", "the database cannot be reached; retry shortly"
        )
    return None


def rollback_quietly() -> None:
    """Roll the request's session back; a lost connection is dropped at teardown instead."""
    with contextlib.suppress(sa_exc.SQLAlchemyError):
        db.session.rollback()


def from_integrity_error(error: sa_exc.IntegrityError) -> ApiError:
    """A constraint the database enforced and the views did not see coming."""
    original = getattr(error, "orig", None)
    if isinstance(original, pg_errors.CheckViolation):
        return ApiError.validation({}, "a value is outside what the database accepts")
    if isinstance(original, pg_errors.ForeignKeyViolation):
        return ApiError.conflict("the resource is referenced by, or references, another one")
    return ApiError.conflict("the resource already exists or clashes with another one")


def handle_integrity_error(error: sa_exc.IntegrityError):
    """Answer a constraint violation with 409 (or 422), after rolling back."""
    rollback_quietly()
    log.info("integrity error: %s", describe(error))
    return error_response(from_integrity_error(error))


def handle_stale_data(error: StaleDataError):
    """A versioned row changed between our read and our write: someone else won."""
    rollback_quietly()
    return error_response(
        ApiError.conflict("the resource was changed by someone else; read it again and retry")
    )


def handle_http_exception(error: HTTPException):
    """Answer werkzeug's and webargs's errors in the one shape."""
    return error_response(from_http_exception(error))


def handle_exception(error: Exception):
    """Last resort: roll back, log, and answer JSON instead of a traceback page."""
    rollback_quietly()
    if isinstance(error, sa_exc.SQLAlchemyError) and (api_error := from_database_error(error)):
        log.warning("database unavailable: %s", describe(error))
        return error_response(api_error)
    log.exception("unhandled error")
    return error_response(ApiError(500, "internal_error", "an unexpected error occurred"))


def init_app(app: Flask) -> None:
    """Send every error through the one JSON shape."""
    app.register_error_handler(ApiError, error_response)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(sa_exc.IntegrityError, handle_integrity_error)
    app.register_error_handler(StaleDataError, handle_stale_data)
    app.register_error_handler(Exception, handle_exception)
