"""Prometheus metrics at /metrics: requests, error codes, and each process's pool.

Under gunicorn, PROMETHEUS_MULTIPROC_DIR (set by gunicorn.conf.py) makes every worker write
its samples to a shared folder, and /metrics adds them up across workers.
"""

import os
import time

from flask import Flask, Response, g, request
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

from app.extensions import db

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


def count_error(code: str) -> None:
    """Count one error response by its code."""
    ERRORS.labels(code).inc()


def start_timer() -> None:
    """Note when the request started."""
    g.metrics_started = time.perf_counter()


def record_response(response):
    """Count the response and time it, labelled by route pattern (never the raw path)."""
    route = request.url_rule.rule if request.url_rule else "unmatched"
    REQUESTS.labels(request.method, route, str(response.status_code)).inc()
    started = g.get("metrics_started")
    if started is not None:
        LATENCY.labels(route).observe(time.perf_counter() - started)
    return response


def record_pool(_exception=None) -> None:
    """Publish this process's pool after each request, once its connection is back."""
    pool = db.engine.pool
    if hasattr(pool, "checkedout"):
        POOL_CHECKED_OUT.set(pool.checkedout())
        POOL_OPEN.set(pool.checkedout() + pool.checkedin())
        POOL_CAPACITY.set(pool.size() + pool._max_overflow)


def metrics() -> Response:
    """The Prometheus text exposition, summed over gunicorn's workers when there are several."""
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


def init_app(app: Flask) -> None:
    """Time and count every request; serve /metrics."""
    app.before_request(start_timer)
    app.after_request(record_response)
    app.teardown_appcontext(record_pool)
    app.add_url_rule("/metrics", "metrics", metrics)
