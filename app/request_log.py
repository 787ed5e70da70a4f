"""Request ids and log lines: every response names its request, every log line is text or JSON.

A request keeps the client's X-Request-ID when it is sane ([A-Za-z0-9._-], at most 128
characters) and gets a new one otherwise; the id is echoed on every response, put in every
error body and on every log line the request causes, and rides with its SQL statements (see
app/database/pool_metrics.py). With LOG_FORMAT=json each line is one JSON object; gunicorn's
own lines and its access log go through the same formatter (gunicorn.conf.py).
"""

import itertools
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from flask import Flask, has_request_context, request

from app.config import app_settings
from app.database.pool_metrics import REQUEST_ID, ROUTE, STARTED_AT, USAGE
from app.models.base import utc_timestamp

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
# WSGI environ keys gunicorn's access log reads (as %({key}e)s atoms), next to ROUTE.
STATUS, DB_WAIT_MS, DB_QUERIES = "app.status", "app.db_wait_ms", "app.db_queries"
# The message of an access line; the request's fields follow it (as key=value, or JSON).
ACCESS_LOG_FORMAT = '%(h)s "%(r)s" %(s)s %(b)s'

# The id of the request this thread serves, for the log lines it causes.
CURRENT = threading.local()


class RequestIds:
    """New request ids: a random prefix per process and a counter, cheaper than a uuid4."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        """A fresh prefix, so two processes (a fork) never hand out the same id."""
        self.prefix = secrets.token_hex(8)
        self.counter = itertools.count(1)

    def new(self) -> str:
        """The next id of this process."""
        return f"{self.prefix}-{next(self.counter):x}"


REQUEST_IDS = RequestIds()
os.register_at_fork(after_in_child=REQUEST_IDS.reset)


def request_id_from(header: str | None) -> str:
    """The client's id when it is sane, else a new one: a malformed id is never echoed."""
    if header and SANE_REQUEST_ID.fullmatch(header):
        return header
    return REQUEST_IDS.new()


def current_request_id() -> str | None:
    """The id of the request being served, for error bodies."""
    return request.environ.get(REQUEST_ID) if has_request_context() else None


class RequestLog:
    """WSGI middleware: give the request its id, echo it, and log the request when slow.

    Outside every other layer, so the header is on every response (404s, 405s, errors) and
    the numbers it records are final: the session has been removed by the time it returns.
    """

    def __init__(self, wsgi_app, slow_request_ms: int):
        self.wsgi_app = wsgi_app
        self.slow_request_s = slow_request_ms / 1000 if slow_request_ms else None

    def __call__(self, environ, start_response):
        started = environ[STARTED_AT] = time.perf_counter()
        request_id = environ[REQUEST_ID] = request_id_from(environ.get("HTTP_X_REQUEST_ID"))
        CURRENT.request_id = request_id

        def start_response_with_id(status, headers, exc_info=None):
            headers.append((REQUEST_ID_HEADER, request_id))
            environ[STATUS] = status
            return start_response(status, headers, exc_info)

        try:
            return self.wsgi_app(environ, start_response_with_id)
        finally:
            CURRENT.request_id = None
            self.finish(environ, time.perf_counter() - started)

    def finish(self, environ: dict, duration_s: float) -> None:
        """Leave the database numbers for the access log; warn about a slow request."""
        usage = environ.get(USAGE)
        if usage is not None:
            environ[DB_WAIT_MS] = round(usage.wait_s * 1000, 1)
            environ[DB_QUERIES] = usage.queries
        if self.slow_request_s is not None and duration_s >= self.slow_request_s:
            fields = request_fields(environ, duration_s)
            log.warning("slow request: %s ms", fields["duration_ms"], extra={"fields": fields})


def request_fields(environ: Mapping, duration_s: float) -> dict[str, Any]:
    """A finished request's log fields."""
    status = environ.get(STATUS)
    return {
        "request_id": environ.get(REQUEST_ID),
        "method": environ.get("REQUEST_METHOD"),
        "route": environ.get(ROUTE) or environ.get("PATH_INFO"),
        "status": int(status[:3]) if status else None,
        "duration_ms": round(duration_s * 1000, 1),
        "db_wait_ms": environ.get(DB_WAIT_MS),
        "db_queries": environ.get(DB_QUERIES),
    }


def access_fields(atoms: Mapping) -> dict[str, Any]:
    """A request's log fields from gunicorn's access log atoms (its %(x)s names)."""
    environ = {
        key: atoms.get("{%s}e" % key.lower())  # noqa: UP031 (gunicorn's atom names)
        for key in (REQUEST_ID, ROUTE, STATUS, DB_WAIT_MS, DB_QUERIES, "PATH_INFO")
    }
    environ["REQUEST_METHOD"] = atoms.get("m")
    environ[STATUS] = atoms.get("s")
    return request_fields(environ, int(atoms.get("D", 0)) / 1_000_000)


def line_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The extra fields of a log record: its own, gunicorn's access atoms, or the request id."""
    fields = getattr(record, "fields", None)
    if fields is None and record.name == "gunicorn.access" and isinstance(record.args, Mapping):
        fields = access_fields(record.args)
    fields = {key: value for key, value in (fields or {}).items() if value is not None}
    request_id = getattr(CURRENT, "request_id", None)
    if request_id and "request_id" not in fields:
        fields["request_id"] = request_id
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then the request's fields."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        line: dict[str, Any] = {
            "time": utc_timestamp(datetime.fromtimestamp(record.created, UTC), "milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
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
        text = super().format(record)
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
    """Give every request an id and a log line; format the app's logs as LOG_FORMAT says."""
    settings = app_settings(app)
    configure_logging(settings.log_format)
    app.wsgi_app = RequestLog(app.wsgi_app, settings.slow_request_ms)
