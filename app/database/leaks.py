"""Leak detection: connections held too long, or still held when their request ended.

A checkout is recorded when it happens (its start and, with a threshold set, the frame that
took it); the process's pool monitor thread (pool_metrics.py) sweeps the open checkouts a few
times per threshold, so a request pays for nothing else. Like HikariCP's leakDetectionThreshold, a
connection held past DB_LEAK_DETECTION_THRESHOLD is logged once, with the stack, and a
second line says when it came back. A connection its request still holds when the request
ends (the session is gone by then, so it came from another path) is returned to the pool.
"""

import inspect
import logging
import os
import time
import traceback
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import Counter
from sqlalchemy import exc as sa_exc

from app import request_context
from app.database.describe import describe

log = logging.getLogger(__name__)

LEAKS = Counter(
    "db_client_connection_leaks",
    "Connections held past DB_LEAK_DETECTION_THRESHOLD, or still held when their request ended",
    ["pool_name"],
)
# Frames of the pool's machinery tell the reader nothing about who took the connection.
SQLALCHEMY_FILES = f"{os.sep}sqlalchemy{os.sep}"
OWN_FILES = frozenset({__file__, str(Path(__file__).with_name("pool_watch.py"))})


class Checkout:
    """One connection out of a pool: since when, by which request, from which stack."""

    __slots__ = ("frame", "pool_name", "proxy", "reported", "request", "started_at", "threshold_s")

    def __init__(self, pool_name: str, proxy, request, threshold_s: float):
        self.pool_name = pool_name
        self.started_at = time.perf_counter()
        self.request = request
        # Held only for a request's checkouts, so it can be returned when the request ends.
        self.proxy = proxy if request is not None else None
        # The frame, not its formatted stack: O(1) to take, formatted only if it is reported.
        self.frame = inspect.currentframe() if threshold_s else None
        self.threshold_s = threshold_s
        self.reported = False

    def held_s(self, now: float | None = None) -> float:
        """Seconds since the checkout."""
        return (now or time.perf_counter()) - self.started_at

    def fields(self, now: float | None = None) -> dict:
        """What a log line says about this checkout."""
        request = self.request
        return {
            "pool_name": self.pool_name,
            "request_id": request and request.request_id,
            "method": request and request.method,
            "path": request and request.path,
            "route": request and request.route,
            "held_ms": round(self.held_s(now) * 1000),
            "stack": format_stack(self.frame) if self.frame else None,
        }


def open_checkout(pool_name: str, proxy, request, threshold_s: float) -> Checkout:
    """Record a checkout: for its request, and for the sweeper when a threshold is set."""
    checkout = Checkout(pool_name, proxy, request, threshold_s)
    if request is not None:
        request.checkouts.add(checkout)
    return checkout


def close_checkout(checkout: Checkout) -> float:
    """Forget a checkout at its checkin; say so if it had been reported. Return seconds held."""
    held_s = checkout.held_s()
    checkout.frame = None  # The frames' locals hold the connection: let them go.
    if checkout.request is not None:
        checkout.request.checkouts.discard(checkout)
        checkout.proxy = None
    if checkout.reported:
        fields = checkout.fields()
        fields.pop("stack")
        log.info(
            "leaked connection returned after %d ms", fields["held_ms"], extra={"fields": fields}
        )
    return held_s


def report(checkout: Checkout, message: str, now: float | None = None) -> None:
    """Log a leak with its request and stack, and count it once."""
    if not checkout.reported:
        checkout.reported = True
        LEAKS.labels(checkout.pool_name).inc()
    fields = checkout.fields(now)
    # Formatted once; dropping the frames lets a connection nobody references be collected.
    checkout.frame = None
    log.warning(message, fields["held_ms"], extra={"fields": fields})


def sweep(checkouts: Iterable[Checkout]) -> None:
    """Report each of checkouts held past its threshold (when it has one), once."""
    now = time.perf_counter()
    for checkout in checkouts:
        if not checkout.threshold_s or checkout.reported:
            continue
        if checkout.held_s(now) >= checkout.threshold_s:
            report(
                checkout,
                "connection held for %d ms, longer than DB_LEAK_DETECTION_THRESHOLD",
                now,
            )


def return_request_leftovers(app, **extra) -> None:
    """Return the connections a finished request still holds, logging and counting each.

    Flask's appcontext_tearing_down: the session has been removed by then, so a connection
    the request still holds came from a path outside the session.
    """
    request = request_context.ending()
    for checkout in tuple(request.checkouts if request else ()):
        proxy = checkout.proxy
        report(checkout, "connection still checked out %d ms when its request ended; returned")
        try:
            proxy.close()
        except sa_exc.SQLAlchemyError as error:
            log.warning("could not return a leaked connection: %s", describe(error))


def format_stack(frame) -> str:
    """The stack from frame outwards as a traceback prints it, without the pool's own frames.

    A frame that is still running shows the line it is at now: for a request still holding
    its connection, where it holds it.
    """
    summary = traceback.StackSummary.extract(traceback.walk_stack(frame), lookup_lines=False)
    summary.reverse()
    kept = [
        entry
        for entry in summary
        if entry.filename not in OWN_FILES and SQLALCHEMY_FILES not in entry.filename
    ]
    return "".join(traceback.StackSummary.from_list(kept).format()).rstrip()
