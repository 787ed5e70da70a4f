"""/api/health and flask db-info report what operators need."""

import json
import time

import sqlalchemy as sa

from app import create_app
from app.database import dispose_engines
from app.database.health import MAX_AGE_S
from deploy.ports import free_port
from tests.conftest import TEST_SETTINGS


def test_health_reports_connections_and_the_pool(client):
    response = client.get("/api/health")
    body = response.json
    assert response.status_code == 200
    assert body["status"] == "ok"
    assert body["database"]["connected"] is True
    assert body["database"]["activeConnections"] >= 1
    pool = body["database"]["pool"]
    assert pool["size"] == 2 and pool["maxOverflow"] == 5
    assert {"checkedOut", "overflow", "idle"} <= set(pool)
    assert body["timestamp"].endswith("Z")


def test_live_answers_without_the_database():
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/x"  # nothing listens there
    down = create_app({**TEST_SETTINGS, "DATABASE_URL": closed})
    try:
        response = down.test_client().get("/api/health/live")
        assert down.test_client().get("/api/health").status_code == 503, "really unreachable"
    finally:
        dispose_engines(down, close=True)
    assert response.status_code == 200
    assert response.json["status"] == "ok"


def test_db_info_prints_health_limits_and_budget(runner):
    result = runner.invoke(args=["db-info", "--json"])
    info = json.loads(result.output)
    assert info["health"]["status"] == "ok"
    assert info["server"]["max_connections"] >= info["server"]["available"] > 0
    assert info["budget"]["worstCase"] == 2 * (2 + 5 + 1)
    assert "WEB_CONCURRENCY 2" in info["budget"]["arithmetic"]
    assert info["settings"]["DB_POOL_SIZE"] == 2


def test_db_info_text_lists_every_section(runner):
    output = runner.invoke(args=["db-info"]).output
    for line in ("health:", "settings:", "server:", "budget:", "  budget.worstCase: 16"):
        assert line.replace("budget.", "") in output


def test_errors_have_one_json_shape(client):
    response = client.delete("/api/health")
    assert response.status_code == 405
    assert response.json["error"]["code"] == "method_not_allowed"
    assert "GET" in response.headers["Allow"]


def test_health_checks_the_database_at_most_once_a_second_per_process(app, client):
    statements = []
    probe = app.extensions["health_probe"]

    def count(*_):
        statements.append(1)

    sa.event.listen(probe.server_engine, "before_cursor_execute", count)
    try:
        time.sleep(MAX_AGE_S)  # Whatever an earlier test left is stale now.
        started = time.monotonic()
        bodies = [client.get("/api/health").json for _ in range(20)]
        elapsed = time.monotonic() - started
    finally:
        sa.event.remove(probe.server_engine, "before_cursor_execute", count)
    assert elapsed < MAX_AGE_S, "the test must ask faster than the probe's age"
    assert len(statements) == 1
    assert all(body["database"]["connected"] for body in bodies)


def test_health_says_nothing_private_when_the_database_is_down(database_url):
    down = create_app({**TEST_SETTINGS, "DATABASE_URL": "postgresql://appuser@127.0.0.9:1/x"})
    try:
        response = down.test_client().get("/api/health")
    finally:
        dispose_engines(down, close=True)
    assert response.status_code == 503
    assert response.json["database"]["error"] == "the database cannot be reached"
    for private in ("127.0.0.9", "appuser", "port 1", "connection to server"):
        assert private not in response.text
