"""The pool wait and the statement share one deadline: a stalled table costs REQUEST_TIMEOUT.

Before the deadline each had its own full timeout: with DB_POOL_TIMEOUT 3 s and
DB_STATEMENT_TIMEOUT 4 s answers took up to 8 s. Directly and through PgBouncer.
"""

import pytest

from tests.probes import concurrent_gets, table_locked
from tests.servers import GunicornServer

pytestmark = pytest.mark.process

REQUEST_TIMEOUT_S = 4
CONCURRENT = 4


@pytest.fixture
def server(topology, server_database_url):
    """One worker of four threads with one connection, and the issue's timeouts."""
    env = {
        **topology.env(server_database_url),
        "GUNICORN_THREADS": str(CONCURRENT),
        "DB_POOL_SIZE": "1",
        "DB_MAX_OVERFLOW": "0",
        "DB_POOL_TIMEOUT": "3",
        "DB_STATEMENT_TIMEOUT": "4000",
        "REQUEST_TIMEOUT": str(REQUEST_TIMEOUT_S),
    }
    with GunicornServer(env) as server:
        yield server


def test_a_stalled_table_costs_each_request_at_most_its_deadline(server, server_database_url):
    assert server.get("/api/services").status_code == 200
    with table_locked(server_database_url):
        futures = concurrent_gets(server.url + "/api/services", CONCURRENT)
        results = [future.result() for future in futures]
    answers = sorted((r.response.status_code, round(r.seconds, 2)) for r in results)
    codes = {r.response.json()["error"]["code"] for r in results if r.response.status_code == 503}
    print(f"answers {answers}; codes {sorted(codes)}")
    assert {status for status, _ in answers} == {503}
    assert max(seconds for _, seconds in answers) <= REQUEST_TIMEOUT_S + 0.6
    assert codes <= {"statement_timeout", "database_busy", "deadline_exceeded"}
    assert all(r.response.headers["Retry-After"].isdigit() for r in results)


def test_the_server_cancels_a_statement_at_the_deadline_not_at_its_own_timeout(
    topology, server_database_url
):
    env = {**topology.env(server_database_url), "REQUEST_TIMEOUT": "2"}  # statements: 15 s
    with GunicornServer(env) as server:
        assert server.get("/api/services").status_code == 200
        with table_locked(server_database_url):
            [future] = concurrent_gets(server.url + "/api/services", 1)
            result = future.result()
    print(f"{result.response.status_code} in {result.seconds:.2f} s")
    assert result.response.status_code == 503
    # The request's time ran out, not DB_STATEMENT_TIMEOUT's: README, "What each 503 means".
    assert result.response.json()["error"]["code"] == "deadline_exceeded"
    assert 1.8 <= result.seconds <= 2.3
