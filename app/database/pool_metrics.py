"""The app's pool metrics: listeners on both engines, and a monitor thread in each process.

The request engine times its checkouts in a TimedQueuePool (pool_watch.py, chosen by
engine_options). install_pool_metrics (database.init_app) has each request start the pool
metrics in its process if they are not yet (gunicorn's post_worker_init starts them before
a worker's first request) and give back the connections it kept. The monitor publishes the
pool counts once a second, so a request writes no gauge, and sweeps for leaks. A thread
does not survive a fork: what was started in another process (gunicorn's master) starts
again, from zero, where it serves.
"""

import logging
import os
import threading
import time
import weakref

from flask import Flask
from flask.signals import appcontext_tearing_down, request_started

from app.config import app_settings
from app.database import leaks
from app.database.pool_watch import (
    HEALTH_POOL,
    MAX_CONNECTIONS,
    REQUEST_POOL,
    PoolWatch,
)
from app.database.replicas import replica_set
from app.extensions import db

log = logging.getLogger(__name__)

# The monitor ticks once a second, or a few times per leak threshold (at most every 10 ms).
LOOKS_PER_THRESHOLD, LONGEST_INTERVAL_S, SHORTEST_INTERVAL_S = 4, 1.0, 0.01


class PoolMetrics:
    """The app's pool instrumentation: listeners attached once, started once per process."""

    def __init__(self, app: Flask):
        self.app = app
        self.leak_threshold_s = app_settings(app).db_leak_detection_threshold / 1000
        self.watches: list[PoolWatch] = []
        self.pid: int | None = None  # The process they were started in.
        self.lock = threading.Lock()

    def start(self) -> None:
        """Listen to both engines (once), publish the bounds and run the pool monitor.

        Called in the process that serves (a gunicorn worker, or the first request under
        flask run and the tests), never in gunicorn's master: the gauges are per process.
        """
        if self.pid == os.getpid():
            return
        with self.lock:
            if self.pid == os.getpid():
                return
            if not self.watches:
                self.watches = self.listen()
            for watch in self.watches:
                watch.reset()  # Engines are disposed after a fork, without close events.
            for pool_name, bound in self.pool_bounds().items():
                MAX_CONNECTIONS.labels(pool_name).set(bound)
                # At 0 from the start: an alert on increase() sees the first leak only as a step.
                leaks.LEAKS.labels(pool_name)
            self.pid = os.getpid()
        MONITOR.watch(self)

    def listen(self) -> list[PoolWatch]:
        """Attach pool listeners to the request engine, the probe's and each replica's.

        Statements are counted by the cursor the engines' connections make (cursor.py).
        """
        with self.app.app_context():
            engines = {
                REQUEST_POOL: db.engine,
                HEALTH_POOL: self.app.extensions["health_probe"].engine,
            }
        replicas = replica_set(self.app)
        if replicas:
            engines |= replicas.engines()
        watches = [PoolWatch(pool_name, self.leak_threshold_s) for pool_name in engines]
        for watch in watches:
            watch.listen(engines[watch.pool_name])
        return watches

    def pool_bounds(self) -> dict[str, int]:
        """Most connections each pool may open in this process, from the settings."""
        options = self.app.config["SQLALCHEMY_ENGINE_OPTIONS"]
        # An in-memory SQLite database is one shared connection; the probe opens one at a time.
        request_bound = options.get("pool_size", 1) + options.get("max_overflow", 0)
        bounds = {REQUEST_POOL: request_bound, HEALTH_POOL: 1}
        replicas = replica_set(self.app)
        settings = app_settings(self.app)
        for pool_name in replicas.engines() if replicas else ():
            bounds[pool_name] = settings.db_pool_size + settings.db_max_overflow
        return bounds

    def publish_counts(self) -> None:
        """Publish each pool's idle and used connections."""
        for watch in self.watches:
            watch.publish_counts()

    def checkouts(self) -> list[leaks.Checkout]:
        """The connections both pools have out now."""
        # tuple() copies a set in one step; checkouts come and go while the monitor looks.
        return [checkout for watch in self.watches for checkout in tuple(watch.checkouts)]


class PoolMonitor:
    """The process's one background thread: publishes pool counts and sweeps for leaks."""

    def __init__(self):
        self.lock = threading.Lock()
        self.watched: weakref.WeakSet = weakref.WeakSet()
        self.interval_s = LONGEST_INTERVAL_S
        self.thread: threading.Thread | None = None

    def watch(self, pool_metrics: PoolMetrics) -> None:
        """Publish pool_metrics' pools, and sweep often enough for its leak threshold."""
        with self.lock:
            self.watched.add(pool_metrics)
            if pool_metrics.leak_threshold_s:
                looks = pool_metrics.leak_threshold_s / LOOKS_PER_THRESHOLD
                self.interval_s = min(self.interval_s, max(SHORTEST_INTERVAL_S, looks))
            # After a fork the parent's thread object remains, not alive.
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self.run, name="pool-monitor", daemon=True)
                self.thread.start()
        pool_metrics.publish_counts()

    def run(self) -> None:
        """Publish and sweep until the process ends."""
        while True:
            time.sleep(self.interval_s)
            try:
                self.tick()
            except Exception:
                log.exception("pool monitor failed; it keeps running")

    def tick(self) -> None:
        """Publish every watched pool's counts, then report connections held too long."""
        for pool_metrics in list(self.watched):
            if pool_metrics.pid != os.getpid():
                continue  # Started in the parent before a fork: its pools are not ours.
            pool_metrics.publish_counts()
            if pool_metrics.leak_threshold_s:
                leaks.sweep(pool_metrics.checkouts())


MONITOR = PoolMonitor()


def install_pool_metrics(app: Flask) -> None:
    """Account for each request's database use, and start the metrics with the first request."""
    app.extensions["pool_metrics"] = PoolMetrics(app)
    request_started.connect(start_pool_metrics, app)
    # Sent after every teardown_appcontext function: the session has given its connection back.
    appcontext_tearing_down.connect(leaks.return_request_leftovers, app)


def start_pool_metrics(app: Flask, **extra) -> None:
    """Start the app's pool metrics in this process unless they are already.

    At each request's start, and in gunicorn's post_worker_init before the first one.
    """
    app.extensions["pool_metrics"].start()
