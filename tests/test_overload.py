"""Overload: more requests than connections turn into fast 503s, never more connections."""

import time

import pytest

from tests.probes import ConnectionSampler, concurrent_gets, table_locked, timed_get
from tests.servers import GunicornServer

pytestmark = pytest.mark.process

WORKERS, POOL_SIZE, POOL_TIMEOUT_S, THREADS = 2, 2, 1, 8
STALL_S = 3
# Fewer than a worker's threads: none waits for a thread, so a 503's latency is the pool's.
CONCURRENT = 6


@pytest.fixture
def server(server_database_url):
    """Two workers of eight threads, each with a pool of two and no overflow."""
    env = {
        "DATABASE_URL": server_database_url,
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
    server, server_database_url, path
):
    with ConnectionSampler(server.application_name) as sampler:
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
        f"statuses {statuses}; peak connections {sampler.peak} (bound {WORKERS * POOL_SIZE});"
        f" slowest 503 {slowest_503:.3f} s; health {health.seconds:.3f} s"
    )

    assert set(statuses) <= {200 if path == "/api/services" else 404, 503}
    assert len(busy) >= CONCURRENT - WORKERS * POOL_SIZE
    for result in busy:
        assert result.seconds <= POOL_TIMEOUT_S + 0.5
        assert result.response.headers["Retry-After"].isdigit()
        assert result.response.json()["error"]["code"] == "database_busy"
    assert sampler.peak <= WORKERS * POOL_SIZE
    assert health.seconds < 1
    assert health.response.status_code == 200
    assert health.response.json()["database"]["connected"] is True


def test_the_stalled_requests_finish_once_the_lock_is_gone(server, server_database_url):
    with table_locked(server_database_url):
        futures = concurrent_gets(server.url + "/api/services", WORKERS)
        time.sleep(1)
    assert [future.result().response.status_code for future in futures] == [200] * WORKERS


def test_a_flood_gets_only_200_and_503_within_the_bound(server, server_database_url):
    flood = 5 * WORKERS * THREADS
    with ConnectionSampler(server.application_name) as sampler:
        with table_locked(server_database_url):
            futures = concurrent_gets(server.url + "/api/services", flood)
            time.sleep(STALL_S)
        statuses = [future.result().response.status_code for future in futures]
    print(
        f"flood of {flood}: {statuses.count(503)} × 503, {statuses.count(200)} × 200;"
        f" peak connections {sampler.peak} (bound {WORKERS * POOL_SIZE})"
    )
    assert set(statuses) <= {200, 503}
    assert statuses.count(503) > 0
    assert sampler.peak <= WORKERS * POOL_SIZE
