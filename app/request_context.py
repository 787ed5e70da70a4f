"""A request's context: its id, when it arrived, its route and status, its use of the database.

Flask's request_started signal opens one RequestContext per request, before any
before_request hook runs; it lasts until the app context's teardown signal, which Flask
sends after every teardown_appcontext function (so after the session has been removed).
Code serving the request reads it with current(); gunicorn's access log, written once the
app has returned, finds it in the WSGI environ under ENVIRON_KEY (its %({app.request}e)s atom).

The client's X-Request-ID is kept when it is sane ([A-Za-z0-9._-], at most 128 characters),
else the request gets a new one; the id is echoed on every response.
"""

import re
import secrets
import time

from flask import Flask, g, has_app_context, has_request_context, request
from flask.signals import request_started

ENVIRON_KEY = "app.request"
REQUEST_ID_HEADER = "X-Request-ID"
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


class RequestContext:
    """One request: its id, method, path and route pattern, status, and database use."""

    def __init__(self, request_id: str, method: str, path: str, route: str | None):
        self.request_id = request_id
        self.method = method
        self.path = path
        self.route = route  # None when no URL rule matched.
        self.started_at = time.perf_counter()
        self.status: int | None = None
        self.wait_s = 0.0  # Spent waiting for pooled connections.
        self.queries = 0
        self.checkouts: set = set()  # The connections it holds now (leaks.Checkout).
        self.deadline_at: float | None = None  # Monotonic; set at first use (deadline.py).

    def duration_s(self) -> float:
        """Seconds since the request arrived."""
        return time.perf_counter() - self.started_at


def request_id_from(header: str | None) -> str:
    """The client's id when it is sane, else a new one: a malformed id is never echoed."""
    if header and SANE_REQUEST_ID.fullmatch(header):
        return header
    return secrets.token_hex(16)


def start(sender: Flask | None = None, **extra) -> RequestContext:
    """Open the context of the request being served (Flask's request_started signal)."""
    rule = request.url_rule
    context = RequestContext(
        request_id_from(request.headers.get(REQUEST_ID_HEADER)),
        request.method,
        request.path,
        rule.rule if rule else None,
    )
    request.environ[ENVIRON_KEY] = g.request_context = context
    return context


def current() -> RequestContext | None:
    """The context of the request being served, up to its app context's teardown.

    None outside a request (a command, a background thread).
    """
    if has_request_context():
        # Opened here when Flask failed before it could signal the request's start.
        return request.environ.get(ENVIRON_KEY) or start()
    return ending()


def ending() -> RequestContext | None:
    """The context of the request whose app context this is, for its teardown's receivers.

    None in any other app context, also one pushed while a request is served.
    """
    return g.get("request_context") if has_app_context() else None


def echo_request_id(response):
    """Name the request on its response, and note the status."""
    context = current()
    context.status = response.status_code
    response.headers[REQUEST_ID_HEADER] = context.request_id
    return response


def init_app(app: Flask) -> None:
    """Give every request of app its context and its X-Request-ID."""
    request_started.connect(start, app)
    app.after_request(echo_request_id)
