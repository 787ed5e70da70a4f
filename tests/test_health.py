"""/api/health and flask db-info report what operators need."""

import json


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


def test_live_answers_without_the_database(client):
    assert client.get("/api/health/live").json["status"] == "ok"


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
