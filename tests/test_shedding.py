"""Shed early: at three times what the pool can serve, the pool stays busy with requests that
can finish in time, and the rest hear 503 at once instead of at their deadline."""

import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.servers import GunicornServer

pytestmark = pytest.mark.process

POOL, HOLD_S, REQUEST_TIMEOUT_S = 2, 0.4, 1
CAPACITY_PER_S = POOL / HOLD_S
OFFERED_PER_S, LOAD_S = 3 * CAPACITY_PER_S, 6


@pytest.fixture
def server(server_database_url):
    """One worker with a thread for every request in flight, a pool of two, a 1 s deadline."""
    env = {
        "DATABASE_URL": server_database_url,
        "GUNICORN_THREADS": "32",
        "DB_POOL_SIZE": str(POOL),
        "DB_MAX_OVERFLOW": "0",
        "REQUEST_TIMEOUT": str(REQUEST_TIMEOUT_S),
        "DB_POOL_TIMEOUT": "10",
    }
    with GunicornServer(env, ("tests.fault_wsgi:app",)) as server:
        yield server


def ask(url: str) -> tuple[int, float, str | None]:
    """GET the slow route once: its status, seconds and error code."""
    started = time.monotonic()
    response = requests.get(url, params={"seconds": HOLD_S}, timeout=30)
    code = response.json().get("error", {}).get("code")
    return response.status_code, time.monotonic() - started, code


def test_three_times_the_load_keeps_goodput_and_admitted_latency(server):
    # Open loop: requests arrive at three times the pool's rate, whatever the answers.
    with ThreadPoolExecutor(max_workers=32) as executor:
        futures = []
        for _ in range(int(OFFERED_PER_S * LOAD_S)):
            futures.append(executor.submit(ask, server.url + "/test/sleep"))
            time.sleep(1 / OFFERED_PER_S)
        answers = [future.result() for future in futures]

    served = sorted(seconds for status, seconds, _ in answers if status == 200)
    refused = [seconds for status, seconds, _ in answers if status == 503]
    goodput = len(served) / LOAD_S
    p99 = served[int(len(served) * 0.99) - 1]
    median_503 = statistics.median(refused) if refused else 0.0
    print(
        f"{len(answers)} answers: {len(served)} × 200 ({goodput:.2f}/s of {CAPACITY_PER_S:g}/s),"
        f" {len(refused)} × 503 {sorted({code for _, _, code in answers} - {None})};"
        f" admitted p99 {p99:.2f} s; median 503 {median_503:.3f} s"
    )
    assert {status for status, _, _ in answers} <= {200, 503}
    assert goodput >= 0.9 * CAPACITY_PER_S
    assert p99 < REQUEST_TIMEOUT_S
    assert median_503 < 0.1
