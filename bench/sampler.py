"""Sample our server connections (pg_stat_activity) and worker memory every 100 ms."""

import threading
import time
from dataclasses import dataclass, field

import psycopg2

from bench.servers import Server, rss_mib

INTERVAL_S = 0.1
OUR_CONNECTIONS = (
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE application_name = %(name)s OR application_name LIKE %(name)s || '/%%'"
)


@dataclass
class Samples:
    """Time series of one run: (wall time, value)."""

    connections: list[tuple[float, int]] = field(default_factory=list)
    worker_rss_mib: list[tuple[float, float]] = field(default_factory=list)

    @property
    def peak_connections(self) -> int:
        """Most server connections carrying our application_name at any sample."""
        return max((count for _, count in self.connections), default=0)

    @property
    def peak_worker_rss_mib(self) -> float:
        """Largest resident memory of any one worker at any sample."""
        return max((rss for _, rss in self.worker_rss_mib), default=0.0)


class Sampler:
    """A background thread that samples until stopped; use as a context manager."""

    def __init__(self, admin_dsn: str, application_name: str, server: Server):
        self.admin_dsn = admin_dsn
        self.application_name = application_name
        self.server = server
        self.samples = Samples()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def __enter__(self) -> "Sampler":
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stopping.set()
        self.thread.join()

    def run(self) -> None:
        """Sample every INTERVAL_S on an autocommit connection of the sampler's own."""
        connection = psycopg2.connect(self.admin_dsn, application_name="bench-sampler")
        connection.autocommit = True
        next_at = time.monotonic()
        try:
            while not self.stopping.is_set():
                self.sample(connection)
                next_at += INTERVAL_S
                self.stopping.wait(max(0.0, next_at - time.monotonic()))
        finally:
            connection.close()

    def sample(self, connection) -> None:
        """Take one sample of connections and worker memory."""
        now = time.time()
        with connection.cursor() as cursor:
            cursor.execute(OUR_CONNECTIONS, {"name": self.application_name})
            self.samples.connections.append((now, cursor.fetchone()[0]))
        sizes = [rss_mib(pid) for pid in self.server.worker_pids()]
        sizes = [size for size in sizes if size is not None]
        if sizes:
            self.samples.worker_rss_mib.append((now, max(sizes)))
