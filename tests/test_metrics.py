"""/metrics: what an operator graphs — requests, error codes, pool use — across workers."""

import re
import time

import pytest

from tests.servers import GunicornServer


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text exposition (0 when absent)."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
        if match and ",".join(sorted((match.group(1) or "").split(","))) == wanted:
            return float(match.group(2))
    return 0.0


def test_metrics_count_requests_by_route_pattern(client):
    client.get("/api/services/424242")
    text = client.get("/metrics").get_data(as_text=True)
    labels = {"method": "GET", "route": "/api/services/<id:service_id>", "status": "404"}
    assert sample(text, "http_requests_total", **labels) >= 1
    assert sample(text, "api_errors_total", code="not_found") >= 1
    assert sample(text, "http_request_duration_seconds_count", route=labels["route"]) >= 1
    assert sample(text, "db_client_connection_wait_time_seconds_count", pool_name="request") >= 1


def test_an_invented_method_is_counted_as_other(client):
    assert client.open("/api/services", method="BREW").status_code == 405
    text = client.get("/metrics").get_data(as_text=True)
    assert sample(text, "http_requests_total", method="other", route="unmatched", status="405") >= 1
    assert 'method="BREW"' not in text


@pytest.mark.process
def test_metrics_add_up_every_worker(server_database_url):
    env = {"DATABASE_URL": server_database_url, "WEB_CONCURRENCY": "2", "DB_POOL_SIZE": "3"}
    with GunicornServer(env) as server:
        for _ in range(40):
            assert server.get("/api/services").status_code == 200
        time.sleep(1.2)  # The pool counts are published once a second.
        text = server.metrics()
    labels = {"method": "GET", "route": "/api/services", "status": "200"}
    assert sample(text, "http_requests_total", **labels) == 40
    assert sample(text, "db_client_connection_max", pool_name="request") == 2 * (3 + 5)
    assert sample(text, "db_client_connection_max", pool_name="health") == 2
    assert sample(text, "db_client_connection_count", pool_name="request", state="used") == 0
    idle = sample(text, "db_client_connection_count", pool_name="request", state="idle")
    assert 1 <= idle <= 2 * 3
    assert sample(text, "db_client_connection_use_time_seconds_count", pool_name="request") == 40
