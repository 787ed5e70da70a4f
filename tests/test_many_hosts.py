"""Many hosts, one PgBouncer: the server holds only PgBouncer's pool, whatever the hosts do."""

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import pytest
import requests

from deploy.pgbouncer import PgBouncer
from tests.pg import database_name
from tests.probes import DatabaseSampler
from tests.servers import GunicornServer
from tests.topology import Topology

pytestmark = pytest.mark.process

HOSTS, WORKERS, THREADS, POOL_SIZE = 3, 2, 4, 4
PGBOUNCER_POOL = 4
LOAD_S = 3
CLIENTS_PER_HOST = 6
# The first requests each host sends after a PgBouncer fault.
AFTER_FAULT = 10


def host_env(bouncer: PgBouncer, database_url: str) -> dict[str, str]:
    """One app host: two workers of four threads, each with a pool of four and no overflow."""
    return {
        **Topology("pgbouncer", bouncer).env(database_url),
        "WEB_CONCURRENCY": str(WORKERS),
        "GUNICORN_THREADS": str(THREADS),
        "DB_POOL_SIZE": str(POOL_SIZE),
        "DB_MAX_OVERFLOW": "0",
        "DB_CONNECTION_BUDGET": str(WORKERS * (POOL_SIZE + 1)),
    }


def keep_getting(url: str, until: float) -> list[int]:
    """GET url over one keep-alive session until the monotonic time until; the statuses."""
    statuses = []
    with requests.Session() as session:
        while time.monotonic() < until:
            statuses.append(session.get(url, timeout=30).status_code)
    return statuses


def load(servers: list[GunicornServer], seconds: float) -> Counter:
    """CLIENTS_PER_HOST clients on every host for seconds; how many of each status."""
    until = time.monotonic() + seconds
    urls = [server.url + "/api/services" for server in servers] * CLIENTS_PER_HOST
    with ThreadPoolExecutor(len(urls)) as executor:
        results = executor.map(keep_getting, urls, [until] * len(urls))
        return Counter(status for statuses in results for status in statuses)


def next_statuses(servers: list[GunicornServer]) -> list[int]:
    """The statuses of the first AFTER_FAULT requests on every host."""
    return [
        server.get("/api/services").status_code for server in servers for _ in range(AFTER_FAULT)
    ]


def test_three_hosts_hold_only_pgbouncers_pool_and_heal_from_its_faults(server_database_url):
    bouncer = PgBouncer(default_pool_size=PGBOUNCER_POOL, reserve_pool_size=0)
    with bouncer, ExitStack() as hosts:
        servers = [
            hosts.enter_context(GunicornServer(host_env(bouncer, server_database_url)))
            for _ in range(HOSTS)
        ]
        with DatabaseSampler(database_name(server_database_url)) as sampler:
            under_load = load(servers, LOAD_S)
            bouncer.restart()
            after_restart = next_statuses(servers)
            bouncer.pause()
            threading.Timer(1, bouncer.resume).start()
            during_pause = load(servers, 2)
            after_resume = next_statuses(servers)
        clients = len(bouncer.show_clients(database_name(server_database_url)))
    print(
        f"{HOSTS} hosts × {WORKERS} workers × pool {POOL_SIZE}: under load {dict(under_load)};"
        f" server connections peak {sampler.peak} (PgBouncer pool {PGBOUNCER_POOL});"
        f" during pause {dict(during_pause)}; client connections at the end {clients}"
    )
    assert under_load[200] > 0
    assert set(under_load) <= {200, 503}
    assert sampler.peak <= PGBOUNCER_POOL
    assert after_restart == [200] * HOSTS * AFTER_FAULT
    assert set(during_pause) <= {200, 503}
    assert after_resume == [200] * HOSTS * AFTER_FAULT
    assert clients <= HOSTS * WORKERS * (POOL_SIZE + 1)
