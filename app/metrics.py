"""Prometheus metrics at /metrics: requests, error codes, and each process's pool.

Under gunicorn, PROMETHEUS_MULTIPROC_DIR (set by gunicorn.conf.py) makes every worker write
its samples to a shared folder, and /metrics adds them up across workers.
"""

import functools
import os
import time
import weakref

from flask import Flask, Response, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from app.database import pool_engine

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
# Where TimedRequests leaves the request's arrival time in the WSGI environ.
STARTED_AT = "app.metrics.started_at"
POOL_CHECKED_OUT = Gauge(
    "db_pool_checked_out_connections", "Connections in use by requests", multiprocess_mode="livesum"
)
POOL_OPEN = Gauge(
    "db_pool_open_connections", "Connections the pools hold open", multiprocess_mode="livesum"
)
POOL_CAPACITY = Gauge(
    "db_pool_capacity_connections",
    "Most connections the pools may open (pool_size + max_overflow)",
    multiprocess_mode="livesum",
)


# The pool numbers each pool last published: checked out, open, capacity.
PUBLISHED_POOL_NUMBERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def count_error(code: str) -> None:
    """Count one error response by its code."""
    ERRORS.labels(code).inc()


class TimedRequests:
    """WSGI middleware that notes when a request arrived, before Flask builds its context.

    Cheaper than a before_request hook writing to g, and the duration it starts then covers
    Flask's own work on the request too.
    """

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        environ[STARTED_AT] = time.perf_counter()
        return self.wsgi_app(environ, start_response)


def record_response(response):
    """Count the response and time it, labelled by route pattern (never the raw path)."""
    current = request._get_current_object()  # One context lookup instead of four.
    route = current.url_rule.rule if current.url_rule else "unmatched"
    method = current.method if current.method in KNOWN_METHODS else "other"
    request_counter(method, route, response.status_code).inc()
    started_at = current.environ.get(STARTED_AT)
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


def record_pool(_exception=None) -> None:
    """Publish this process's pool after each request, once its connection is back."""
    pool = pool_engine().pool
    if not hasattr(pool, "checkedout"):
        return
    checked_out = pool.checkedout()
    numbers = (checked_out, checked_out + pool.checkedin(), pool.size() + pool._max_overflow)
    # Most requests leave the pool as they found it: skip three shared-memory writes then.
    # Keyed by pool, so a pool made anew (dispose after a fork) publishes from scratch.
    if PUBLISHED_POOL_NUMBERS.get(pool) != numbers:
        for gauge, value in zip((POOL_CHECKED_OUT, POOL_OPEN, POOL_CAPACITY), numbers, strict=True):
            gauge.set(value)
        PUBLISHED_POOL_NUMBERS[pool] = numbers


def metrics() -> Response:
    """The Prometheus text exposition, summed over gunicorn's workers when there are several."""
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


def init_app(app: Flask) -> None:
    """Time and count every request; serve /metrics."""
    app.wsgi_app = TimedRequests(app.wsgi_app)
    app.after_request(record_response)
    app.teardown_appcontext(record_pool)
    app.add_url_rule("/metrics", "metrics", metrics)
