"""What a test watches from outside: locks, server connections, timed requests."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg2
import requests

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


class ConnectionSampler:
    """Samples how many server connections carry exactly our application_name."""

    def __init__(self, application_name: str, interval_s: float = 0.05):
        self.application_name, self.interval_s = application_name, interval_s
        self.samples: list[int] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        """Sample until stopped."""
        while not self.stopped.is_set():
            rows = pg.admin_execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                (self.application_name,),
            )
            self.samples.append(rows[0][0])
            time.sleep(self.interval_s)

    @property
    def peak(self) -> int:
        """The most connections seen at once."""
        return max(self.samples, default=0)

    def __enter__(self) -> "ConnectionSampler":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        self.thread.join()


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
