"""Prometheus metrics: requests and error codes (pools: app/database/pool_metrics.py).

Under gunicorn, PROMETHEUS_MULTIPROC_DIR (set by gunicorn.conf.py) makes every worker write
its samples to a shared folder, and the master's listener on METRICS_PORT adds them up.
The API port has no /metrics: the numbers are for operators, not clients.
"""

import functools
import time

from flask import Flask, request
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    multiprocess,
    start_http_server,
)

from app.database.pool_metrics import ROUTE, STARTED_AT

REQUESTS = Counter(
    "http_requests_total", "HTTP responses by route and status", ["method", "route", "status"]
)
LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time from request to response, by route",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
ERRORS = Counter("api_errors_total", "Error responses by error code", ["code"])
# Any other method a client invents is counted as "other": one series each would be unbounded.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def count_error(code: str) -> None:
    """Count one error response by its code."""
    ERRORS.labels(code).inc()


def record_response(response):
    """Count the response and time it, labelled by route pattern (never the raw path)."""
    # Each attribute of the request proxy is a context lookup: two, rather than four.
    rule, environ = request.url_rule, request.environ
    route = environ[ROUTE] = rule.rule if rule else "unmatched"
    method = environ.get("REQUEST_METHOD", "GET").upper()  # As werkzeug makes request.method.
    if method not in KNOWN_METHODS:
        method = "other"
    request_counter(method, route, response.status_code).inc()
    started_at = environ.get(STARTED_AT)
    if started_at is not None:
        latency_histogram(route).observe(time.perf_counter() - started_at)
    return response


# Label values are checked and hashed on every labels() call; a route's children are few.
@functools.cache
def request_counter(method: str, route: str, status: int):
    """The requests counter for one method, route pattern and status."""
    return REQUESTS.labels(method, route, str(status))


@functools.cache
def latency_histogram(route: str):
    """The latency histogram for one route pattern."""
    return LATENCY.labels(route)


def serve_metrics(port: int, address: str):
    """Serve the Prometheus exposition on address:port, summed over gunicorn's workers.

    Run in gunicorn's master (when_ready), which never serves a request: the workers write
    their samples to PROMETHEUS_MULTIPROC_DIR and this listener adds them up per scrape,
    away from the public port. Returns the server; an OSError if the port is taken.
    """
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    server, _thread = start_http_server(port, address, registry)
    return server


def init_app(app: Flask) -> None:
    """Count every request and time it from its arrival, which request_log.py notes.

    Served on METRICS_PORT by gunicorn.conf.py, not here.
    """
    app.after_request(record_response)
