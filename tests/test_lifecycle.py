"""gunicorn process lifecycle: SIGTERM drains and leaves no connection; forks share none.

Each test runs directly and through PgBouncer (the topology fixture): there "no connection"
means none of our clients at PgBouncer, and forks must not share a client socket.
"""

import time
from collections import defaultdict

import pytest

from tests.probes import concurrent_gets, table_locked
from tests.servers import GunicornServer, overlapping_env

pytestmark = pytest.mark.process


def wait_for_none_of_ours(topology, application_name: str, timeout_s: float = 3) -> list:
    """Our connections, once they are all gone or timeout_s has passed."""
    deadline = time.monotonic() + timeout_s
    while (ours := topology.our_clients(application_name)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return ours


def test_sigterm_lets_in_flight_requests_finish_and_leaves_no_connection(
    topology, server_database_url
):
    env = {**overlapping_env(server_database_url), **topology.env(server_database_url)}
    server = GunicornServer(env).start()
    try:
        assert server.get("/api/health").status_code == 200
        with table_locked(server_database_url):
            in_flight = concurrent_gets(server.url + "/api/services", 4)
            time.sleep(0.5)
            server.process.send_signal(15)
            time.sleep(1)
        statuses = [future.result().response.status_code for future in in_flight]
        exit_code = server.process.wait(30)
    finally:
        server.__exit__()
    assert statuses == [200] * 4
    assert exit_code == 0
    assert wait_for_none_of_ours(topology, server.application_name) == []


def test_preloaded_workers_never_share_a_connection(topology, server_database_url):
    env = {
        **topology.env(server_database_url),
        "WEB_CONCURRENCY": "3",
        "TEST_WARM_POOL_IN_MASTER": "1",
    }
    with GunicornServer(env, ("--preload", "tests.fault_wsgi:app")) as server:
        answers = [server.get("/test/backend") for _ in range(90)]
        log = server.output()
    assert {answer.status_code for answer in answers} == {200}
    # A socket two processes share has one local port: one backend, or one PgBouncer client.
    workers_by_socket = defaultdict(set)
    for answer in answers:
        workers_by_socket[answer.json()["client_port"]].add(answer.json()["worker_pid"])
    assert all(len(workers) == 1 for workers in workers_by_socket.values()), workers_by_socket
    for symptom in ("Traceback", "lost synchronization", "server closed the connection"):
        assert symptom not in log
