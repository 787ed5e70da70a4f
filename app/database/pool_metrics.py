"""Pool metrics at the pool, so every path counts: OpenTelemetry's db.client.connection.*.

Pool events give the create and use times and the connection counts; the counts are kept in
the process and published once a second by a monitor thread, so a request writes no gauge.
No event fires when a checkout is asked for, so the request engine's pool is RequestPool, a
QueuePool whose public connect() times the wait from that moment: the wait time, the
waiters and the timeouts. Under gunicorn the gauges are summed over the live workers
(PROMETHEUS_MULTIPROC_DIR).

Each request's use of the pools (its wait, its statements, the connections it still holds)
is a DatabaseUsage that DatabaseAccounting, a WSGI middleware, opens and closes.
"""

import logging
import os
import threading
import time
import weakref
from functools import cache

from flask import Flask
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine
from sqlalchemy.pool import ConnectionPoolEntry, QueuePool

from app.config import app_settings
from app.database import leaks
from app.extensions import db

log = logging.getLogger(__name__)

REQUEST_POOL = "request"
HEALTH_POOL = "health"
# OpenTelemetry's advice for db.client.connection.*_time, up to the longest pool timeout.
TIME_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# WSGI environ keys: the request's DatabaseUsage, its id, its route pattern once matched,
# and when it arrived (request_log.py notes it, metrics.py times the response from it).
USAGE = "app.database_usage"
REQUEST_ID = "app.request_id"
ROUTE = "app.route"
STARTED_AT = "app.started_at"
# Where a connection's pool entry keeps its state and its checkout.
OPENED, CHECKOUT, CONNECT_STARTED = "metrics_opened", "metrics_checkout", "metrics_connect_started"
IDLE, USED = "idle", "used"
# The monitor ticks once a second, or a few times per leak threshold (at most every 10 ms).
LOOKS_PER_THRESHOLD, LONGEST_INTERVAL_S, SHORTEST_INTERVAL_S = 4, 1.0, 0.01

CONNECTIONS = Gauge(
    "db_client_connection_count",
    "Connections open, by state",
    ["pool_name", "state"],
    multiprocess_mode="livesum",
)
MAX_CONNECTIONS = Gauge(
    "db_client_connection_max",
    "Most connections the pool may open",
    ["pool_name"],
    multiprocess_mode="livesum",
)
PENDING = Gauge(
    "db_client_connection_pending_requests",
    "Checkouts waiting for a connection",
    ["pool_name"],
    multiprocess_mode="livesum",
)
TIMEOUTS = Counter(
    "db_client_connection_timeouts",
    "Checkouts that gave up after the pool timeout",
    ["pool_name"],
)
WAIT_TIME = Histogram(
    "db_client_connection_wait_time_seconds",
    "Time from asking for a connection to getting one (or timing out)",
    ["pool_name"],
    buckets=TIME_BUCKETS,
)
USE_TIME = Histogram(
    "db_client_connection_use_time_seconds",
    "Time from checkout to checkin",
    ["pool_name"],
    buckets=TIME_BUCKETS,
)
CREATE_TIME = Histogram(
    "db_client_connection_create_time_seconds",
    "Time to open a new connection",
    ["pool_name"],
    buckets=TIME_BUCKETS,
)


class PoolInstruments:
    """One pool's metric children, looked up once: labels() hashes its values on each call."""

    def __init__(self, pool_name: str):
        self.idle = CONNECTIONS.labels(pool_name, IDLE)
        self.used = CONNECTIONS.labels(pool_name, USED)
        self.max = MAX_CONNECTIONS.labels(pool_name)
        self.pending = PENDING.labels(pool_name)
        self.timeouts = TIMEOUTS.labels(pool_name)
        # At 0 from the start: an alert on increase() sees the first leak only as a step.
        self.leaks = leaks.LEAKS.labels(pool_name)
        self.wait_time = WAIT_TIME.labels(pool_name)
        self.use_time = USE_TIME.labels(pool_name)
        self.create_time = CREATE_TIME.labels(pool_name)


@cache
def instruments(pool_name: str) -> PoolInstruments:
    """The metric children of the pool named pool_name."""
    return PoolInstruments(pool_name)


class DatabaseUsage:
    """What one request did with the pools: its wait, its statements, what it still holds."""

    __slots__ = ("checkouts", "environ", "queries", "request_id", "wait_s")

    def __init__(self, environ: dict):
        self.environ = environ
        self.request_id = environ.get(REQUEST_ID)
        self.wait_s = 0.0
        self.queries = 0
        self.checkouts: set = set()

    def describe(self) -> dict:
        """The request's id, method, path and route pattern (once matched), for log lines."""
        environ = self.environ
        return {
            "request_id": self.request_id,
            "method": environ.get("REQUEST_METHOD"),
            "path": environ.get("PATH_INFO"),
            "route": environ.get(ROUTE),
        }


# The request this thread serves, if any: pool events and statements are charged to it.
CURRENT = threading.local()
CURRENT.usage = None


def current_usage() -> DatabaseUsage | None:
    """The DatabaseUsage of the request this thread serves."""
    return getattr(CURRENT, "usage", None)


class RequestPool(QueuePool):
    """QueuePool timing each checkout from the moment it is asked for.

    Public API only: poolclass is create_engine's documented way to choose a pool, and
    connect() is the pool's public checkout (Engine.connect and Session reach it through
    Engine.raw_connection). The constructor is QueuePool's, so recreate() after a
    dispose makes another RequestPool.
    """

    def connect(self):
        """Check a connection out, counting the wait, the waiters and the timeouts."""
        measure = instruments(REQUEST_POOL)
        # With a connection idle the checkout takes it at once; else it queues or connects.
        waits = self.checkedin() == 0
        if waits:
            measure.pending.inc()
        started = time.perf_counter()
        try:
            return super().connect()
        except sa_exc.TimeoutError:
            measure.timeouts.inc()
            raise
        finally:
            waited = time.perf_counter() - started
            if waits:
                measure.pending.dec()
            measure.wait_time.observe(waited)
            usage = getattr(CURRENT, "usage", None)
            if usage is not None:
                usage.wait_s += waited


class PoolWatch:
    """The pool event listeners of one engine: create and use times, checkouts, and counts.

    The counts are kept in the process and published by the monitor thread: the checkouts
    in a set (adding and discarding are atomic, and cheap), the open connections under a
    lock (they change only when one is opened or closed). An entry's info says whether its
    connection was counted open and whether it is checked out, so a checkout retried after
    a failed ping, a connection invalidated while in use, or one opened before the listeners
    came, is counted right.
    """

    def __init__(self, pool_name: str, leak_threshold_s: float):
        self.pool_name = pool_name
        self.measure = instruments(pool_name)
        self.leak_threshold_s = leak_threshold_s
        self.lock = threading.Lock()
        self.open = 0
        self.checkouts: set = set()

    def on_do_connect(self, dialect, record: ConnectionPoolEntry, cargs, cparams) -> None:
        """Note when opening a connection began."""
        record.info[CONNECT_STARTED] = time.perf_counter()

    def on_connect(self, dbapi_connection, record: ConnectionPoolEntry) -> None:
        """Count the new connection, and observe how long opening it took."""
        started = record.info.pop(CONNECT_STARTED, None)
        if started is not None:
            self.measure.create_time.observe(time.perf_counter() - started)
        record.info[OPENED] = True
        with self.lock:
            self.open += 1

    def on_checkout(self, dbapi_connection, record: ConnectionPoolEntry, proxy) -> None:
        """Record the checkout, once."""
        if CHECKOUT in record.info or OPENED not in record.info:
            return
        checkout = record.info[CHECKOUT] = leaks.open_checkout(
            self.pool_name, proxy, getattr(CURRENT, "usage", None), self.leak_threshold_s
        )
        self.checkouts.add(checkout)

    def on_checkin(self, dbapi_connection, record: ConnectionPoolEntry) -> None:
        """The connection is back (or was invalidated, and closed already)."""
        self.end_use(record)

    def on_close(self, dbapi_connection, record: ConnectionPoolEntry) -> None:
        """A closed connection (recycled, invalidated, overflow, detached) is no longer open."""
        self.end_use(record)
        if record.info.pop(OPENED, None):
            with self.lock:
                self.open -= 1

    def end_use(self, record: ConnectionPoolEntry) -> None:
        """Observe how long the connection was held, and stop tracking its checkout."""
        checkout = record.info.pop(CHECKOUT, None)
        if checkout is not None:
            self.checkouts.discard(checkout)
            self.measure.use_time.observe(leaks.close_checkout(checkout))

    def listen(self, engine: Engine) -> None:
        """Attach the listeners to engine (and to the pools its dispose makes later)."""
        event.listen(engine, "do_connect", self.on_do_connect)
        event.listen(engine, "connect", self.on_connect)
        event.listen(engine, "checkout", self.on_checkout)
        event.listen(engine, "checkin", self.on_checkin)
        event.listen(engine, "close", self.on_close)
        event.listen(engine, "detach", self.on_close)

    def publish_counts(self) -> None:
        """Set the idle and used gauges."""
        used = len(self.checkouts)
        publish(self.measure.used, used)
        publish(self.measure.idle, self.open - used)

    def forget_counts(self) -> None:
        """Start from zero: after a fork, the parent's connections are not this process's."""
        self.open = 0
        self.checkouts = set()
        self.lock = threading.Lock()


# The value each gauge child was last set to by publish(), so an unchanged one is not rewritten.
PUBLISHED: dict[int, float] = {}


def publish(gauge, value: float) -> None:
    """Set a gauge child, skipping the shared-memory write when the value is unchanged."""
    if PUBLISHED.get(id(gauge)) != value:
        gauge.set(value)
        PUBLISHED[id(gauge)] = value


class PoolMetrics:
    """The app's pool instrumentation: listeners attached once, started once per process."""

    def __init__(self, app: Flask):
        self.app = app
        self.leak_threshold_s = app_settings(app).db_leak_detection_threshold / 1000
        self.watched: list[tuple[PoolWatch, Engine]] = []
        self.started_in_generation = -1

    def pool_bounds(self) -> dict[str, int]:
        """Most connections each pool may open in this process, from the settings."""
        options = self.app.config["SQLALCHEMY_ENGINE_OPTIONS"]
        # An in-memory SQLite database is one shared connection; the probe opens one at a time.
        request_bound = options.get("pool_size", 1) + options.get("max_overflow", 0)
        return {REQUEST_POOL: request_bound, HEALTH_POOL: 1}

    def start(self) -> None:
        """Listen to both engines (once), publish the bounds and run the pool monitor.

        Called in the process that serves (a gunicorn worker, or the first request under
        flask run and the tests), never in gunicorn's master: the gauges are per process.
        """
        if self.started_in_generation == GENERATION[0]:
            return
        if not self.watched:
            self.listen()
        for watch, _engine in self.watched:
            watch.forget_counts()  # Engines are disposed after a fork, without close events.
        for pool_name, bound in self.pool_bounds().items():
            instruments(pool_name).max.set(bound)
        MONITOR.watch(self)
        self.started_in_generation = GENERATION[0]

    def listen(self) -> None:
        """Attach the pool listeners to the request engine and the probe's.

        Statements are counted by the cursor the engines' connections make (tagging.py).
        """
        with self.app.app_context():
            request_engine = db.engine
        probe_engine = self.app.extensions["health_probe"].engine
        self.watched = [
            (PoolWatch(REQUEST_POOL, self.leak_threshold_s), request_engine),
            (PoolWatch(HEALTH_POOL, self.leak_threshold_s), probe_engine),
        ]
        for watch, engine in self.watched:
            watch.listen(engine)

    def publish_counts(self) -> None:
        """Publish each pool's idle and used connections."""
        for watch, _engine in self.watched:
            watch.publish_counts()

    def checkouts(self) -> list[leaks.Checkout]:
        """The connections both pools have out now."""
        # tuple() copies a set in one step; checkouts come and go while the monitor looks.
        return [checkout for watch, _engine in self.watched for checkout in tuple(watch.checkouts)]


class PoolMonitor:
    """The process's one background thread: publishes pool counts and sweeps for leaks.

    Pool counts read from the pool every interval cost a request nothing; a scrape sees
    them at most one interval old. Started lazily in the process that serves, so a fork
    (gunicorn's workers) starts its own.
    """

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
            if pool_metrics.started_in_generation != GENERATION[0]:
                continue  # Started in the parent before a fork: its pools are not ours.
            pool_metrics.publish_counts()
            if pool_metrics.leak_threshold_s:
                leaks.sweep(pool_metrics.checkouts())


MONITOR = PoolMonitor()
# Bumped in every forked child: what was started in the parent must start again there.
GENERATION = [0]


def after_fork_in_child() -> None:
    """A child starts its own monitor, and publishes its own gauges from scratch."""
    GENERATION[0] += 1
    MONITOR.thread = None
    PUBLISHED.clear()
    CURRENT.usage = None


os.register_at_fork(after_in_child=after_fork_in_child)


class DatabaseAccounting:
    """WSGI middleware giving each request its DatabaseUsage, and taking back what it kept.

    It runs after Flask has popped the request's context, so the session has been removed
    by then: a connection the request still holds came from a path outside the session.
    """

    def __init__(self, wsgi_app, pool_metrics: PoolMetrics):
        self.wsgi_app = wsgi_app
        self.pool_metrics = pool_metrics

    def __call__(self, environ, start_response):
        if self.pool_metrics.started_in_generation != GENERATION[0]:
            self.pool_metrics.start()
        usage = environ[USAGE] = DatabaseUsage(environ)
        CURRENT.usage = usage
        try:
            return self.wsgi_app(environ, start_response)
        finally:
            CURRENT.usage = None
            if usage.checkouts:
                leaks.return_leftovers(usage)


def install_pool_metrics(app: Flask) -> None:
    """Give the request engine a RequestPool, and account for each request's database use.

    Call it after SQLALCHEMY_ENGINE_OPTIONS is set and before the engines are made.
    """
    options = app.config["SQLALCHEMY_ENGINE_OPTIONS"]
    if "pool_size" in options and "poolclass" not in options:
        options["poolclass"] = RequestPool
    pool_metrics = app.extensions["pool_metrics"] = PoolMetrics(app)
    app.wsgi_app = DatabaseAccounting(app.wsgi_app, pool_metrics)


def start_pool_metrics(app: Flask) -> None:
    """Start the app's pool metrics in this process (gunicorn's post_worker_init)."""
    app.extensions["pool_metrics"].start()


def publish_pool_counts(app: Flask) -> None:
    """Publish the app's pool counts now, rather than at the monitor's next tick."""
    app.extensions["pool_metrics"].publish_counts()
