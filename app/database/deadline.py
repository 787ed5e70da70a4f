"""One deadline per request (REQUEST_TIMEOUT), kept by the pool, the driver and the server.

A request's deadline is REQUEST_TIMEOUT after a worker starts it, or earlier when nginx's
X-Request-Start stamp says it already waited in a queue. Everything the request does with
the database shares it:
- the wait for a pooled connection (pool_gate.py) and opening one;
- every statement: the server cancels it at the deadline (a SET LOCAL statement_timeout
  of what is left, sent only when that is below the connection's DB_STATEMENT_TIMEOUT);
- every wait for the server, also when the network is silent and no cancel can arrive:
  psycopg2's wait callback gives up at the deadline plus CLIENT_GRACE_S, so the server's
  own cancel, when it can come, is what the client sees.

The callback (psycopg2.extensions.set_wait_callback) is process-wide. Outside a request,
and outside `limited()`, it waits as long as libpq would, except that a connect keeps its
connect_timeout (libpq does not apply it in this mode).
"""

import contextlib
import contextvars
import select
import time
from collections.abc import Iterator

import psycopg2
from flask import has_request_context, request
from psycopg2 import extensions
from sqlalchemy import exc as sa_exc

from app import request_context
from app.config import app_settings

REQUEST_START_HEADER = "X-Request-Start"
# The client gives up this long after the deadline: the server's cancel comes first.
CLIENT_GRACE_S = 0.5
# Stamps larger than these are in milliseconds or microseconds since the epoch.
MILLISECOND_STAMPS, MICROSECOND_STAMPS = 1e11, 1e14
# A limit set by limited(): a monotonic time, or None for none.
SCOPE_LIMIT: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "deadline_scope_limit", default=None
)
CONNECTING_STATUSES = {extensions.STATUS_SETUP}


class DeadlineExceeded(sa_exc.TimeoutError):
    """The request's deadline passed before the database was asked."""


class DeadlineReached(psycopg2.OperationalError):
    """The client stopped waiting for the server: the deadline (or connect_timeout) passed."""


def queued_s(header: str | None, now: float | None = None) -> float:
    """How long ago an X-Request-Start stamp (`t=` seconds, ms or µs since the epoch) was set.

    0 for a missing, malformed or future stamp: it may only shorten a deadline.
    """
    if not header:
        return 0.0
    try:
        stamp = float(header.strip().removeprefix("t="))
    except ValueError:
        return 0.0
    if stamp > MICROSECOND_STAMPS:
        stamp /= 1_000_000
    elif stamp > MILLISECOND_STAMPS:
        stamp /= 1000
    waited = (now or time.time()) - stamp
    return waited if waited > 0 else 0.0


def request_deadline() -> float | None:
    """The monotonic time the current request's deadline falls at; None outside a request."""
    if not has_request_context():
        return None
    context = request_context.current()
    if context.deadline_at is None:
        waited = queued_s(request.headers.get(REQUEST_START_HEADER))
        started = time.monotonic() - context.duration_s()
        context.deadline_at = started + app_settings().request_timeout - waited
    return context.deadline_at


def current_limit() -> float | None:
    """The earliest of the request's deadline and any limited() around the caller."""
    limits = [limit for limit in (request_deadline(), SCOPE_LIMIT.get()) if limit is not None]
    return min(limits, default=None)


def remaining_s() -> float | None:
    """Seconds left before the current limit (negative once past); None when unlimited."""
    limit = current_limit()
    return None if limit is None else limit - time.monotonic()


@contextlib.contextmanager
def limited(seconds: float) -> Iterator[None]:
    """Bound every wait for the server inside the block to seconds from now."""
    limit = time.monotonic() + seconds
    outer = SCOPE_LIMIT.get()
    token = SCOPE_LIMIT.set(limit if outer is None else min(outer, limit))
    try:
        yield
    finally:
        SCOPE_LIMIT.reset(token)


def wait_within_deadline(connection) -> None:
    """psycopg2's wait callback: poll until libpq has its answer, or raise DeadlineReached."""
    give_up_at = client_give_up_at(connection)
    state = connection.poll()
    while state != extensions.POLL_OK:
        left_s = None if give_up_at is None else give_up_at - time.monotonic()
        if left_s is not None and left_s <= 0:
            raise DeadlineReached("the database did not answer before the deadline")
        wait_for_socket(connection.fileno(), state, left_s)
        if left_s is None or give_up_at > time.monotonic():
            state = connection.poll()


def client_give_up_at(connection) -> float | None:
    """When to stop waiting: the current limit plus grace, or a connect's connect_timeout."""
    limit = current_limit()
    give_up_at = None if limit is None else limit + CLIENT_GRACE_S
    if connection.status in CONNECTING_STATUSES:
        connect_timeout = int(extensions.parse_dsn(connection.dsn).get("connect_timeout", 0))
        if connect_timeout > 0:
            connect_by = time.monotonic() + connect_timeout
            give_up_at = connect_by if give_up_at is None else min(give_up_at, connect_by)
    return give_up_at


def wait_for_socket(fileno: int, state: int, timeout_s: float | None) -> None:
    """Block until the socket is readable (POLL_READ) or writable (POLL_WRITE), or timeout_s."""
    poller = select.poll()
    poller.register(fileno, select.POLLIN if state == extensions.POLL_READ else select.POLLOUT)
    poller.poll(None if timeout_s is None else max(timeout_s * 1000, 0))


def install_client_deadline() -> None:
    """Make every psycopg2 wait in this process honour the current deadline."""
    extensions.set_wait_callback(wait_within_deadline)


def statement_timeout_prefix(remaining: float | None, default_ms: int) -> str:
    """SET LOCAL statement_timeout to what is left, when that is below default_ms (0: none)."""
    if remaining is None:
        return ""
    left_ms = max(int(remaining * 1000), 1)
    if default_ms and left_ms >= default_ms:
        return ""
    return f"SET LOCAL statement_timeout = {left_ms}; "
