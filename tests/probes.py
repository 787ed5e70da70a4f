"""What a test watches from outside: locks, server connections, timed requests."""

import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg2
import requests

from bench.sampler import BackgroundLoop
from tests import pg


@contextmanager
def table_locked(database_url: str, table: str = "services"):
    """Hold an ACCESS EXCLUSIVE lock on table from another connection, stalling its readers."""
    connection = psycopg2.connect(database_url)
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
