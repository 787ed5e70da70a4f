"""gunicorn's own controls keep the connection budget: a TTIN past it is refused, HUP stays."""

import signal
import time
from pathlib import Path

import pytest

from tests.servers import GunicornServer

pytestmark = pytest.mark.process


def worker_count(server: GunicornServer) -> int:
    """How many worker processes the master has now."""
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    return len(children.read_text().split())


def settle(server: GunicornServer, expected: int, timeout_s: float = 10) -> int:
    """The worker count once it is expected, or after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while (count := worker_count(server)) != expected and time.monotonic() < deadline:
        time.sleep(0.1)
    return count


def budget_server(database_url: str, budget: int) -> GunicornServer:
    """Two workers of DB_POOL_SIZE 2 + DB_MAX_OVERFLOW 1 + 1 probe: 8 connections at worst."""
    return GunicornServer(
        {
            "DATABASE_URL": database_url,
            "WEB_CONCURRENCY": "2",
            "DB_POOL_SIZE": "2",
            "DB_MAX_OVERFLOW": "1",
            "DB_CONNECTION_BUDGET": str(budget),
        }
    )


def test_a_ttin_past_the_budget_is_refused_with_a_log_line(server_database_url):
    with budget_server(server_database_url, budget=8) as server:
        assert settle(server, 2) == 2
        server.process.send_signal(signal.SIGTTIN)
        server.process.send_signal(signal.SIGTTIN)
        time.sleep(2)
        assert worker_count(server) == 2
        assert "3 workers refused" in server.output()
        assert "exceeds DB_CONNECTION_BUDGET 8" in server.output()
        server.process.send_signal(signal.SIGHUP)
        time.sleep(3)
        assert settle(server, 2) == 2
        assert server.get("/api/health").status_code == 200


def test_a_ttin_within_the_budget_adds_a_worker(server_database_url):
    with budget_server(server_database_url, budget=12) as server:
        assert settle(server, 2) == 2
        server.process.send_signal(signal.SIGTTIN)
        assert settle(server, 3) == 3
        server.process.send_signal(signal.SIGTTIN)
        time.sleep(2)
        assert worker_count(server) == 3
