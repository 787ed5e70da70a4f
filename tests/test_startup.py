"""Start-up: bad settings and over-budget deployments refuse; a missing database does not."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg2
import pytest
import requests

from app.database.health import MAX_AGE_S
from deploy.pgbouncer import PgBouncer
from deploy.ports import port_outside_ephemeral_range
from tests import pg
from tests.servers import ROOT, GunicornServer, free_port, run_gunicorn_expecting_exit
from tests.tcp_proxy import TcpProxy
from tests.topology import Topology

pytestmark = pytest.mark.process
FLASK = str(Path(sys.executable).with_name("flask"))


def server_limits() -> tuple[int, int]:
    """The server's max_connections and superuser_reserved_connections."""
    rows = pg.admin_execute(
        "SELECT current_setting('max_connections')::int,"
        " current_setting('superuser_reserved_connections')::int"
    )
    return rows[0]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DB_POOL_SIZE", "abc"),
        ("DB_POOL_TIMEOUT", "-1"),
        ("WEB_CONCURRENCY", "0"),
        ("CORS_ORIGINS", "http://localhost:3000/"),
        ("CORS_ORIGINS", "*"),
        ("REQUEST_TIMEOUT", "abc"),
    ],
)
def test_gunicorn_refuses_a_malformed_setting_in_one_line(server_database_url, name, value):
    code, output = run_gunicorn_expecting_exit({"DATABASE_URL": server_database_url, name: value})
    assert code != 0
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert name in lines[0] and repr(value) in lines[0]
    assert "Booting worker" not in output


def test_flask_commands_refuse_a_malformed_setting_in_one_line(server_database_url):
    env = {**os.environ, "DATABASE_URL": server_database_url, "DB_POOL_PRE_PING": "maybe"}
    result = subprocess.run(
        [FLASK, "db-info"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "configuration error: DB_POOL_PRE_PING='maybe' is invalid; it accepts true or false"
    ]


def test_budget_guard_refuses_a_worst_case_over_the_budget_and_names_each_number(
    server_database_url,
):
    env = {
        "DATABASE_URL": server_database_url,
        "WEB_CONCURRENCY": "2",
        "DB_POOL_SIZE": "5",
        "DB_MAX_OVERFLOW": "5",
        "DB_CONNECTION_BUDGET": "20",
    }
    code, output = run_gunicorn_expecting_exit(env)
    assert code != 0
    for number in ("WEB_CONCURRENCY 2", "DB_POOL_SIZE 5", "DB_MAX_OVERFLOW 5", "= 22"):
        assert number in output
    assert "exceeds DB_CONNECTION_BUDGET 20" in output
    assert "Booting worker" not in output


def test_budget_guard_refuses_more_than_the_server_can_give(server_database_url):
    max_connections, reserved = server_limits()
    env = {"DATABASE_URL": server_database_url, "WEB_CONCURRENCY": "10", "DB_POOL_SIZE": "20"}
    code, output = run_gunicorn_expecting_exit(env)
    assert code != 0
    assert f"max_connections {max_connections}" in output
    assert f"superuser_reserved_connections {reserved} = {max_connections - reserved}" in output
    assert "= 260" in output


def test_budget_guard_warns_when_the_server_has_fewer_free_connections(server_database_url):
    max_connections, reserved = server_limits()
    available = max_connections - reserved
    env = {
        "DATABASE_URL": server_database_url,
        "WEB_CONCURRENCY": "1",
        "DB_POOL_SIZE": str(available - 1),
        "DB_MAX_OVERFLOW": "0",
    }
    holder = psycopg2.connect(server_database_url)  # at least one connection in use
    try:
        with GunicornServer(env) as server:
            output = server.output()
    finally:
        holder.close()
    assert f"worst case {available} exceeds the server's free connections now" in output


def test_an_unreachable_database_warns_and_health_says_so_quickly():
    port = free_port()
    env = {"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/x", "DB_CONNECT_TIMEOUT": "2"}
    with GunicornServer(env) as server:
        started = time.monotonic()
        response = server.get("/api/health")
        elapsed = time.monotonic() - started
        output = server.output()
    assert "server limits not checked" in output
    assert response.status_code == 503
    assert elapsed < 2 + 1
    body = response.json()
    assert body["status"] == "error" and body["database"]["connected"] is False


def test_a_silent_database_answers_503_within_connect_timeout_plus_one_second():
    with socket.create_server(("127.0.0.1", 0), backlog=50) as silent:
        port = silent.getsockname()[1]
        env = {
            "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/x",
            "DB_CONNECT_TIMEOUT": "2",
        }
        with GunicornServer(env) as server:
            started = time.monotonic()
            response = server.get("/api/health")
            elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert 2 - 0.2 <= elapsed < 2 + 1


def test_database_down_at_start_heals_without_a_restart(server_database_url):
    proxy = TcpProxy(("127.0.0.1", 5432), port_outside_ephemeral_range())
    database_name = pg.database_name(server_database_url)
    env = {
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{proxy.port}/{database_name}",
        "DB_CONNECT_TIMEOUT": "2",
    }
    with GunicornServer(env) as server:
        down_health = server.get("/api/health")
        down = [server.get(path) for path in ("/api/services", "/api/services/987654")]
        proxy.open()
        try:
            time.sleep(MAX_AGE_S)  # A health result may be that old.
            health = server.get("/api/health")
            services = server.get("/api/services")
            missing = server.get("/api/services/987654")
        finally:
            proxy.close()
        log = server.output()
    assert down_health.status_code == 503
    assert down_health.json()["database"]["error"] == "the database cannot be reached"
    for private in ("127.0.0.1", str(proxy.port), "postgres", database_name):
        assert private not in down_health.text, "health names no host, port, role or database"
    assert "connection to server at" in log, "the log keeps the driver's words"
    for response in down:
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "database_unavailable"
        assert response.headers["Retry-After"].isdigit()
    assert health.status_code == 200
    assert services.status_code == 200
    assert missing.status_code == 404


def test_live_never_touches_the_database():
    port = free_port()
    env = {"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/x"}
    with GunicornServer(env) as server:
        response = requests.get(server.url + "/api/health/live", timeout=5)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def behind(bouncer: PgBouncer, database_url: str, **overrides: str) -> dict[str, str]:
    """Settings for a server on database_url reached through bouncer."""
    return {**Topology("pgbouncer", bouncer).env(database_url), **overrides}


def test_behind_pgbouncer_gunicorn_refuses_more_clients_than_max_client_conn(
    server_database_url,
):
    with PgBouncer(max_client_conn=20) as bouncer:
        env = behind(bouncer, server_database_url, WEB_CONCURRENCY="2")
        code, output = run_gunicorn_expecting_exit(env)
    assert code != 0
    assert (
        "worst case WEB_CONCURRENCY 2 × (DB_POOL_SIZE 5 + DB_MAX_OVERFLOW 5 + health probe 1)"
        " = 22 exceeds PgBouncer's max_client_conn 20"
    ) in output
    assert "Booting worker" not in output


def test_behind_pgbouncer_the_server_limit_binds_pgbouncer_not_the_clients(
    server_database_url,
):
    max_connections, reserved = server_limits()
    available = max_connections - reserved
    bouncer = PgBouncer(default_pool_size=available, max_db_connections=0, query_wait_timeout=120)
    with bouncer:
        # More client connections than the server gives: PgBouncer holds the server side.
        env = behind(
            bouncer,
            server_database_url,
            WEB_CONCURRENCY="2",
            DB_POOL_SIZE="45",
            DB_MAX_OVERFLOW="5",
            DB_CONNECTION_BUDGET="102",
        )
        with GunicornServer(env) as server:
            output = server.output()
    assert available < 102
    assert "= 102, within limits" in output
    assert (
        f"PgBouncer pool_size {available} + reserve_pool_size 5 = {available + 5} server"
        f" connections to {server_database_url.rsplit('/', 1)[1]} exceed what the server can"
        f" give: max_connections {max_connections}"
    ) in output
    assert "PgBouncer's query_wait_timeout 120 s > DB_POOL_TIMEOUT 10 s + 1 s" in output
