"""Sample our server connections (pg_stat_activity) and worker memory every 100 ms."""

import threading
import time
from dataclasses import dataclass, field

import psycopg2

from bench.postgres import ADMIN_DSN
from bench.servers import Server, rss_mib

INTERVAL_S = 0.1
OUR_CONNECTIONS = (
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE application_name = %(name)s OR application_name LIKE %(name)s || '/%%'"
)


class BackgroundLoop:
    """Calls tick() every interval_s on a daemon thread for as long as it is entered."""

    interval_s = 0.1

    def __enter__(self):
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.thread.join()

    def run(self) -> None:
        """Tick on a fixed schedule until stopped (a slow tick does not shift the next)."""
        next_at = time.monotonic()
        while not self.stopping.is_set():
            self.tick()
            next_at += self.interval_s
            self.stopping.wait(max(0.0, next_at - time.monotonic()))

    def tick(self) -> None:
        """One round of the loop's work."""
        raise NotImplementedError


@dataclass
class Samples:
    """Time series of one run: (wall time, value)."""

    connections: list[tuple[float, int]] = field(default_factory=list)
    worker_rss_mib: list[tuple[float, float]] = field(default_factory=list)
    workers_cpu_s: float = 0.0  # CPU its workers spent over the whole run.

    @property
    def peak_connections(self) -> int:
        """Most server connections carrying our application_name at any sample."""
        return max((count for _, count in self.connections), default=0)

    @property
    def peak_worker_rss_mib(self) -> float:
        """Largest resident memory of any one worker at any sample."""
        return max((rss for _, rss in self.worker_rss_mib), default=0.0)


class ServerSampler(BackgroundLoop):
    """Samples the server every INTERVAL_S on an autocommit connection of its own."""

    interval_s = INTERVAL_S

    def run(self) -> None:
        """Open the sampler's connection, tick until stopped, close it."""
        self.connection = psycopg2.connect(ADMIN_DSN, application_name="bench-sampler")
        self.connection.autocommit = True
        try:
            super().run()
        finally:
            self.connection.close()


class Sampler(ServerSampler):
    """Our server connections (by application_name) and the largest worker's memory."""

    def __init__(self, application_name: str, server: Server):
        self.application_name = application_name
        self.server = server
        self.samples = Samples()

    def tick(self) -> None:
        """One sample."""
        self.sample(self.connection)

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
