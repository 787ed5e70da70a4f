"""What a test watches from outside: locks, server connections, timed requests."""

import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg2
import requests

from app.database.pool_metrics import LONGEST_INTERVAL_S
from bench.sampler import BackgroundLoop
from tests import pg

# The lock holder's application_name, so samplers of a whole database leave it out.
LOCK_HOLDER = "test-lock-holder"
# One database's server connections over TCP (PgBouncer's), the lock holder's aside; the
# app's direct connections come over the Unix socket (client_port -1). Parameters: database.
TCP_CONNECTIONS = (
    "FROM pg_stat_activity WHERE datname = %s AND client_port <> -1"
    f" AND application_name <> '{LOCK_HOLDER}'"
)


def wait_for_pool_counts() -> None:
    """Wait out a tick of the pool monitor, which publishes the pool counts once a second."""
    time.sleep(LONGEST_INTERVAL_S + 0.2)


@contextmanager
def table_locked(database_url: str, table: str = "services"):
    """Hold an ACCESS EXCLUSIVE lock on table from another connection, stalling its readers."""
    connection = psycopg2.connect(database_url, application_name=LOCK_HOLDER)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        yield
    finally:
        connection.rollback()
        connection.close()


class ConnectionSampler(BackgroundLoop):
    """Samples how many server connections carry exactly our application_name."""

    interval_s = 0.05

    def __init__(self, application_name: str):
        self.application_name = application_name
        self.samples: list[int] = []

    def tick(self) -> None:
        """Take one sample."""
        rows = pg.admin_execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
            (self.application_name,),
        )
        self.samples.append(rows[0][0])

    @property
    def peak(self) -> int:
        """The most connections seen at once."""
        return max(self.samples, default=0)


class DatabaseSampler(ConnectionSampler):
    """Samples one database's server connections over TCP: PgBouncer's (TCP_CONNECTIONS)."""

    def __init__(self, database: str):
        super().__init__(LOCK_HOLDER)
        self.database = database

    def tick(self) -> None:
        """Take one sample."""
        rows = pg.admin_execute(f"SELECT count(*) {TCP_CONNECTIONS}", (self.database,))
        self.samples.append(rows[0][0])


@dataclass
class Timed:
    """A response and how long it took."""

    response: requests.Response
    seconds: float


def timed_get(url: str, timeout_s: float = 30) -> Timed:
    """GET url and time it."""
    started = time.monotonic()
    response = requests.get(url, timeout=timeout_s)
    return Timed(response, time.monotonic() - started)


def concurrent_gets(url: str, count: int) -> list:
    """Start count GETs of url at once; return their futures."""
    executor = ThreadPoolExecutor(max_workers=count)
    futures = [executor.submit(timed_get, url) for _ in range(count)]
    executor.shutdown(wait=False)
    return futures
