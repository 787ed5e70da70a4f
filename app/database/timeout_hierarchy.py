"""The timeouts as one hierarchy: each layer gives up before the layer above it does.

nginx's proxy_read_timeout > gunicorn's worker timeout > REQUEST_TIMEOUT (+ the time a
503 takes) ≥ DB_STATEMENT_TIMEOUT, DB_POOL_TIMEOUT, DB_CONNECT_TIMEOUT and PgBouncer's
query_wait_timeout. A deadline at or past gunicorn's worker timeout refuses start-up: the
worker would be killed before it could answer. A lower layer that outlasts the deadline
only warns, as the deadline cuts it short anyway; so does a graceful_timeout shorter than
the deadline (a reload or a stop may cut requests that are still within it). PgBouncer's
query_wait_timeout is held under DB_POOL_TIMEOUT + 1 s by budget.py's check, which the
warning on DB_POOL_TIMEOUT keeps under the deadline.
"""

from app.config import Settings
from app.database.deadline import CLIENT_GRACE_S

# After the deadline a request still needs the client's grace and its answer.
ANSWER_MARGIN_S = CLIENT_GRACE_S + 1.0


def deadline_errors(settings: Settings, worker_timeout_s: float) -> list[str]:
    """Why start-up must refuse: the deadline does not end before gunicorn kills the worker."""
    latest_answer_s = settings.request_timeout + ANSWER_MARGIN_S
    if worker_timeout_s <= 0 or latest_answer_s < worker_timeout_s:
        return []
    return [
        f"REQUEST_TIMEOUT {settings.request_timeout:g} s + {ANSWER_MARGIN_S:g} s to answer"
        f" = {latest_answer_s:g} s is not under gunicorn's worker timeout {worker_timeout_s:g} s:"
        " a request at its deadline would be killed instead of answered 503"
    ]


def lower_layers(settings: Settings) -> dict[str, float]:
    """Each timeout under the deadline, in seconds, by the variable that sets it."""
    return {
        "DB_STATEMENT_TIMEOUT": settings.db_statement_timeout / 1000,
        "DB_POOL_TIMEOUT": settings.db_pool_timeout,
        "DB_CONNECT_TIMEOUT": settings.db_connect_timeout,
    }


def deadline_warnings(settings: Settings, graceful_timeout_s: float) -> list[str]:
    """Each layer under the deadline that outlasts it, and a graceful_timeout shorter than it."""
    deadline_s = settings.request_timeout
    warnings = [
        f"{name} {seconds:g} s > REQUEST_TIMEOUT {deadline_s:g} s: the deadline ends it first"
        for name, seconds in lower_layers(settings).items()
        if seconds > deadline_s
    ]
    if graceful_timeout_s < deadline_s:
        warnings.append(
            f"gunicorn's graceful_timeout {graceful_timeout_s:g} s < REQUEST_TIMEOUT"
            f" {deadline_s:g} s: a reload or stop may cut requests still within their deadline"
        )
    return warnings
