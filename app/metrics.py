"""Prometheus metrics: requests and error codes (pools: app/database/pool_watch.py).

Under gunicorn, PROMETHEUS_MULTIPROC_DIR (set by gunicorn.conf.py) makes every worker write
its samples to a shared folder, and the master's listener on METRICS_PORT adds them up.
The API port has no /metrics: the numbers are for operators, not clients.
"""

import time

from flask import Flask
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    multiprocess,
    start_http_server,
)

from app import request_context

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
    context = request_context.current()
    route = context.route or "unmatched"
    method = context.method if context.method in KNOWN_METHODS else "other"
    REQUESTS.labels(method, route, str(response.status_code)).inc()
    LATENCY.labels(route).observe(time.perf_counter() - context.started_at)
    return response


def serve_metrics(port: int, address: str):
    """Serve the Prometheus exposition on address:port, summed over gunicorn's workers.

    Run in gunicorn's master (on_starting), which never serves a request: the workers write
    their samples to PROMETHEUS_MULTIPROC_DIR and this listener adds them up per scrape,
    away from the public port. Returns the server; an OSError if the port is taken.
    """
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    server, _thread = start_http_server(port, address, registry)
    return server


def init_app(app: Flask) -> None:
    """Count every request and time it from its arrival (app/request_context.py).

    Served on METRICS_PORT by gunicorn.conf.py, not here.
    """
    app.after_request(record_response)
