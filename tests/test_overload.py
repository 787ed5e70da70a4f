"""Overload: more requests than connections turn into fast 503s, never more connections.

Directly, the app's pools are the bound; through PgBouncer (the topology fixture) its pool
for our database is, smaller here than the app's so requests also queue in PgBouncer.
"""

import time

import pytest

from tests.probes import concurrent_gets, table_locked, timed_get
from tests.servers import GunicornServer

pytestmark = pytest.mark.process

WORKERS, POOL_SIZE, POOL_TIMEOUT_S, THREADS = 2, 2, 1, 8
STALL_S = 3
# Fewer than a worker's threads: none waits for a thread, so a 503's latency is the pool's.
CONCURRENT = 6


@pytest.fixture
def pgbouncer_settings() -> dict:
    """PgBouncer's pool one short of the app's; its queue gives up when our pool would."""
    return {
        "default_pool_size": WORKERS * POOL_SIZE - 1,
        "reserve_pool_size": 0,
        "query_wait_timeout": POOL_TIMEOUT_S,
    }


@pytest.fixture
def server(topology, server_database_url):
    """Two workers of eight threads, each with a pool of two and no overflow."""
    env = {
        **topology.env(server_database_url),
        "WEB_CONCURRENCY": str(WORKERS),
        "GUNICORN_THREADS": str(THREADS),
        "DB_POOL_SIZE": str(POOL_SIZE),
        "DB_MAX_OVERFLOW": "0",
        "DB_POOL_TIMEOUT": str(POOL_TIMEOUT_S),
    }
    with GunicornServer(env) as server:
        yield server


# The list reads through the session; a row by id through the pooled driver read.
@pytest.mark.parametrize("path", ["/api/services", "/api/services/987654"])
def test_excess_requests_get_fast_503_and_connections_stay_bounded(
    topology, server, server_database_url, path
):
    bound = topology.server_bound(WORKERS * POOL_SIZE, server_database_url)
    with topology.sampler(server.application_name, server_database_url) as sampler:
        with table_locked(server_database_url):
            futures = concurrent_gets(server.url + path, CONCURRENT)
            time.sleep(POOL_TIMEOUT_S + 0.8)
            health = timed_get(server.url + "/api/health")
            time.sleep(STALL_S - POOL_TIMEOUT_S - 0.8)
        results = [future.result() for future in futures]

    statuses = sorted(result.response.status_code for result in results)
    busy = [result for result in results if result.response.status_code == 503]
    slowest_503 = max(result.seconds for result in busy)
    print(
        f"statuses {statuses}; peak connections {sampler.peak} (bound {bound});"
        f" slowest 503 {slowest_503:.3f} s; health {health.seconds:.3f} s"
    )

    assert set(statuses) <= {200 if path == "/api/services" else 404, 503}
    assert len(busy) >= CONCURRENT - bound
    for result in busy:
        assert result.seconds <= POOL_TIMEOUT_S + 0.5
        assert result.response.headers["Retry-After"].isdigit()
        assert result.response.json()["error"]["code"] == "database_busy"
    assert sampler.peak <= bound
    assert health.seconds < 1
    assert health.response.status_code == 200
    assert health.response.json()["database"]["connected"] is True


def test_the_stalled_requests_finish_once_the_lock_is_gone(server, server_database_url):
    with table_locked(server_database_url):
        futures = concurrent_gets(server.url + "/api/services", WORKERS)
        time.sleep(1)
    assert [future.result().response.status_code for future in futures] == [200] * WORKERS


def test_a_flood_gets_only_200_and_503_within_the_bound(topology, server, server_database_url):
    flood = 5 * WORKERS * THREADS
    bound = topology.server_bound(WORKERS * POOL_SIZE, server_database_url)
    with topology.sampler(server.application_name, server_database_url) as sampler:
        with table_locked(server_database_url):
            futures = concurrent_gets(server.url + "/api/services", flood)
            time.sleep(STALL_S)
        statuses = [future.result().response.status_code for future in futures]
    print(
        f"flood of {flood}: {statuses.count(503)} × 503, {statuses.count(200)} × 200;"
        f" peak connections {sampler.peak} (bound {bound})"
    )
    assert set(statuses) <= {200, 503}
    assert statuses.count(503) > 0
    assert sampler.peak <= bound
