"""Faults cost at most the requests in flight: connections heal and are never left behind.

Each test runs directly and through PgBouncer (the topology fixture).
"""

import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests import pg
from tests.probes import table_locked
from tests.servers import GunicornServer

pytestmark = pytest.mark.process

FAULT_APP = ("tests.fault_wsgi:app",)
# The list goes through the session; a row by id through the pooled driver read.
READ_PATHS = ("/api/services", "/api/services/{id}")


@pytest.fixture(scope="module")
def committed_service_id(server_database_url) -> int:
    """A committed service row in the module's database, for the by-id reads."""
    return pg.insert_service(server_database_url)


@pytest.fixture(params=READ_PATHS)
def read_path(request, committed_service_id) -> str:
    """Each way a GET reads the database."""
    return request.param.format(id=committed_service_id)


def server_env(topology, database_url: str, **overrides: str) -> dict[str, str]:
    """Settings for a small server on the module's database."""
    return {**topology.env(database_url), "WEB_CONCURRENCY": "2", "DB_POOL_SIZE": "2", **overrides}


def all_succeed(server: GunicornServer, count: int, path: str) -> list[int]:
    """Send count GETs of path one after another; return the statuses that were not 200."""
    statuses = [server.get(path).status_code for _ in range(count)]
    return [status for status in statuses if status != 200]


def restart_postgresql() -> None:
    """Restart the local cluster and wait until it accepts connections."""
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        check=True,
        timeout=60,
    )
    for _ in range(60):
        if subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1"]).returncode == 0:
            return
        time.sleep(0.5)
    raise RuntimeError("PostgreSQL did not come back within 30 s")


def test_killed_backends_are_replaced_without_a_failed_request(
    topology, server_database_url, read_path
):
    with GunicornServer(server_env(topology, server_database_url)) as server:
        assert all_succeed(server, 20, read_path) == []
        assert topology.terminate_ours(server.application_name, server_database_url) > 0
        assert all_succeed(server, 50, read_path) == []


@pytest.mark.restarts_postgres
def test_a_postgresql_restart_heals_without_restarting_us(
    topology, server_database_url, committed_service_id
):
    by_id = f"/api/services/{committed_service_id}"
    with GunicornServer(server_env(topology, server_database_url)) as server:
        assert all_succeed(server, 20, by_id) == []
        restart_postgresql()
        assert all_succeed(server, 25, by_id) == []
        assert all_succeed(server, 25, "/api/services") == []
        assert server.get("/api/health").status_code == 200


def test_a_cancelled_statement_answers_503_and_its_connection_serves_on(
    topology, server_database_url, read_path
):
    env = server_env(
        topology,
        server_database_url,
        WEB_CONCURRENCY="1",
        DB_POOL_SIZE="1",
        DB_MAX_OVERFLOW="0",
        DB_STATEMENT_TIMEOUT="500",
    )
    with GunicornServer(env) as server:
        assert server.get(read_path).status_code == 200
        connection_before = topology.pool_connections(server.application_name)
        with table_locked(server_database_url):
            started = time.monotonic()
            response = server.get(read_path)
            elapsed = time.monotonic() - started
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "statement_timeout"
        assert response.headers["Retry-After"].isdigit()
        assert elapsed < 1.5
        assert len(connection_before) == 1
        assert topology.pool_connections(server.application_name) == connection_before
        assert server.get(read_path).status_code == 200


def test_failed_requests_leave_nothing_checked_out_or_idle_in_transaction(
    topology, server_database_url
):
    env = server_env(topology, server_database_url, WEB_CONCURRENCY="1", GUNICORN_THREADS="4")
    failing = [
        ("get", "/api/services/987654", 404),
        ("get", "/api/services?per_page=1000", 422),
        ("get", "/api/services?unknown=1", 422),
        ("post", "/test/fail-inside-transaction", 500),
        ("get", "/no/such/route", 404),
    ]
    with GunicornServer(env, FAULT_APP) as server:
        for _ in range(20):
            for method, path, status in failing:
                response = requests.request(method, server.url + path, timeout=10)
                assert response.status_code == status, path
                assert "error" in response.json()
        states = topology.server_states(server.application_name, server_database_url)
        pool = server.get("/api/health").json()["database"]["pool"]
        services = server.get("/api/services", params={"q": "must never be committed"}).json()
    assert "idle in transaction" not in states
    assert pool["checkedOut"] == 0
    assert services["total"] == 0
