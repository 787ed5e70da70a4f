"""Log lines: every line is text or JSON, and names the request that caused it.

With LOG_FORMAT=json each line is one JSON object; gunicorn's own lines and its access log
go through the same formatter (gunicorn.conf.py). A request's id and numbers come from its
context (app/request_context.py); its SQL statements carry the id too (cursor.py).
"""

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from flask import Flask
from flask.signals import appcontext_tearing_down

from app import request_context
from app.config import app_settings
from app.models.base import utc_timestamp
from app.request_context import ENVIRON_KEY, RequestContext

log = logging.getLogger(__name__)

# The message of an access line; the request's fields follow it (as key=value, or JSON).
ACCESS_LOG_FORMAT = '%(h)s "%(r)s" %(s)s %(b)s'
# The most of a client's text (its request line, its path) one line carries: a client must
# not write kilobytes into the log with every refused request.
MAX_CLIENT_TEXT = 256


def cut(text: str | None) -> str | None:
    """text, or its first MAX_CLIENT_TEXT characters and an ellipsis."""
    if text is None or len(text) <= MAX_CLIENT_TEXT:
        return text
    return text[:MAX_CLIENT_TEXT] + "…"


def request_fields(context: RequestContext, status: int | None, duration_s: float) -> dict:
    """A finished request's log fields."""
    return {
        "request_id": context.request_id,
        "method": context.method,
        "route": context.route or cut(context.path),
        "status": status,
        "duration_ms": round(duration_s * 1000, 1),
        "db_wait_ms": round(context.wait_s * 1000, 1),
        "db_queries": context.queries,
    }


def log_if_slow(app: Flask, **extra) -> None:
    """Warn about the request this app context served if it took SLOW_REQUEST_MS or more."""
    context = request_context.ending()
    slow_request_ms = app_settings(app).slow_request_ms
    if context is None or not slow_request_ms:
        return
    duration_s = context.duration_s()
    if duration_s * 1000 >= slow_request_ms:
        fields = request_fields(context, context.status, duration_s)
        log.warning("slow request: %s ms", fields["duration_ms"], extra={"fields": fields})


def access_fields(atoms: Mapping) -> dict[str, Any]:
    """A request's log fields from gunicorn's access log atoms (its %(x)s names)."""
    status = int(atoms["s"][:3]) if atoms.get("s") else None
    duration_s = int(atoms.get("D", 0)) / 1_000_000
    context = atoms.get("{%s}e" % ENVIRON_KEY)  # noqa: UP031 (gunicorn's atom names)
    if context is None:  # gunicorn answered without the app (a request it could not parse).
        context = RequestContext(None, atoms.get("m"), atoms.get("U"), None)
    return request_fields(context, status, duration_s)


def message_of(record: logging.LogRecord) -> str:
    """The record's message; an access line's with the client's request line cut short."""
    if record.name == "gunicorn.access" and isinstance(record.args, Mapping):
        return record.msg % {**record.args, "r": cut(record.args.get("r"))}
    return record.getMessage()


def line_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The extra fields of a log record: its own, gunicorn's access atoms, or the request id."""
    fields = getattr(record, "fields", None)
    if fields is None and record.name == "gunicorn.access" and isinstance(record.args, Mapping):
        fields = access_fields(record.args)
    fields = {key: value for key, value in (fields or {}).items() if value is not None}
    context = request_context.current()
    if context is not None and "request_id" not in fields:
        fields["request_id"] = context.request_id
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then the request's fields."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        line: dict[str, Any] = {
            "time": utc_timestamp(datetime.fromtimestamp(record.created, UTC), "milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": message_of(record),
        }
        line.update(line_fields(record))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        # UTF-8 like the API's JSON (json_provider.py): an operator greps for the text they read.
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """A plain line: time, level, logger, message, then key=value fields; a stack below."""

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The record as text."""
        fields = line_fields(record)
        stack = fields.pop("stack", None)
        cut_short = {**record.__dict__, "msg": message_of(record), "args": None}
        text = super().format(logging.makeLogRecord(cut_short))
        if fields:
            text += " " + " ".join(f"{key}={value}" for key, value in fields.items())
        return f"{text}\n{stack}" if stack else text


FORMATTERS = {"json": JsonFormatter, "text": TextFormatter}


def gunicorn_logconfig(log_format: str) -> dict[str, Any]:
    """gunicorn's logconfig_dict: its lines, its access log and the app's, in log_format."""
    handler = {"class": "logging.StreamHandler", "formatter": log_format}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {log_format: {"()": FORMATTERS[log_format]}},
        "handlers": {
            "stderr": {**handler, "stream": "ext://sys.stderr"},
            "stdout": {**handler, "stream": "ext://sys.stdout"},
        },
        "root": {"level": "INFO", "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["stdout"], "propagate": False},
        },
    }


def configure_logging(log_format: str) -> None:
    """Log the app's lines in log_format, unless the server has configured logging already.

    gunicorn has (gunicorn.conf.py), and so has pytest; `flask` commands and `flask run`
    have not, and would otherwise print warnings only, without request ids.
    """
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(FORMATTERS[log_format]())
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def init_app(app: Flask) -> None:
    """Format the app's logs as LOG_FORMAT says, and log each slow request."""
    configure_logging(app_settings(app).log_format)
    # Sent after every teardown_appcontext function: the request's numbers are final.
    appcontext_tearing_down.connect(log_if_slow, app)
