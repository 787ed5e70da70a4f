"""Leak detection: a connection held past DB_LEAK_DETECTION_THRESHOLD, or kept past its request."""

import json
import time

import pytest
import sqlalchemy as sa
from flask import current_app

from app import create_app
from app.database import dispose_engines
from app.extensions import db
from tests.probes import wait_for_pool_counts
from tests.servers import GunicornServer
from tests.test_metrics import sample
from tests.test_request_log import output_once

LEAKY_APP = ("tests.leaky_wsgi:app",)


def log_lines(output: str, message_part: str) -> list[dict]:
    """The JSON log lines whose message contains message_part."""
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return [line for line in lines if message_part in line["message"]]


@pytest.fixture
def leaky_server(server_database_url):
    """The leaky app under gunicorn: one pooled connection, a 300 ms threshold."""
    env = {
        "DATABASE_URL": server_database_url,
        "DB_POOL_SIZE": "1",
        "DB_MAX_OVERFLOW": "0",
        "DB_POOL_TIMEOUT": "2",
        "DB_LEAK_DETECTION_THRESHOLD": "300",
    }
    with GunicornServer(env, LEAKY_APP) as server:
        yield server


@pytest.mark.process
def test_a_connection_held_too_long_is_logged_with_its_stack_then_its_return(leaky_server):
    response = leaky_server.get("/test/hold?seconds=1", headers={"X-Request-ID": "hold-1"})
    assert response.status_code == 200
    output = output_once(leaky_server, "leaked connection returned")
    wait_for_pool_counts()
    metrics = leaky_server.metrics()
    [warning] = log_lines(output, "longer than DB_LEAK_DETECTION_THRESHOLD")
    assert warning["level"] == "WARNING"
    assert (warning["request_id"], warning["method"], warning["path"]) == (
        "hold-1",
        "GET",
        "/test/hold",
    )
    assert warning["pool_name"] == "request"
    assert 300 <= warning["held_ms"] < 1000
    assert "leaky_wsgi.py" in warning["stack"] and "in hold" in warning["stack"]
    assert "sqlalchemy" not in warning["stack"]
    [returned] = log_lines(output, "leaked connection returned")
    assert returned["request_id"] == "hold-1"
    assert returned["held_ms"] >= 1000
    assert sample(metrics, "db_client_connection_leaks_total", pool_name="request") == 1


@pytest.mark.process
def test_a_connection_kept_past_its_request_is_returned_logged_and_counted(leaky_server):
    response = leaky_server.get("/test/leak", headers={"X-Request-ID": "leak-1"})
    assert response.status_code == 200
    # The pool has one connection: this answers only if the leaked one came back.
    assert leaky_server.get("/api/services", timeout=10).status_code == 200
    output = output_once(leaky_server, "leaked connection returned")
    wait_for_pool_counts()
    metrics = leaky_server.metrics()
    [warning] = log_lines(output, "when its request ended")
    assert warning["level"] == "WARNING"
    assert (warning["request_id"], warning["route"]) == ("leak-1", "/test/leak")
    assert "leaky_wsgi.py" in warning["stack"] and "in leak" in warning["stack"]
    [returned] = log_lines(output, "leaked connection returned")
    assert returned["request_id"] == "leak-1"
    assert sample(metrics, "db_client_connection_leaks_total", pool_name="request") == 1
    assert sample(metrics, "db_client_connection_count", pool_name="request", state="used") == 0


@pytest.mark.process
def test_a_quick_request_is_no_leak(leaky_server):
    for _ in range(5):
        assert leaky_server.get("/test/hold?seconds=0").status_code == 200
    time.sleep(0.5)
    assert not log_lines(leaky_server.output(), "DB_LEAK_DETECTION_THRESHOLD")
    # Present at 0, not absent: an alert on increase() sees the first leak only as a step.
    assert 'db_client_connection_leaks_total{pool_name="request"} 0.0' in leaky_server.metrics()


def test_an_app_context_pushed_inside_a_request_leaves_its_connections_alone(database_url, caplog):
    app = create_app({"DATABASE_URL": database_url, "SECRET_KEY": "test"})

    def nested():
        db.session.execute(sa.text("SELECT 1"))
        with current_app.app_context():  # Its teardown is not the request's end.
            pass
        return {"still": db.session.scalar(sa.text("SELECT 2"))}

    app.add_url_rule("/test/nested", "nested", nested)
    try:
        response = app.test_client().get("/test/nested")
    finally:
        dispose_engines(app, close=True)
    assert (response.status_code, response.json) == (200, {"still": 2})
    assert "when its request ended" not in caplog.text
