"""Pool metrics at the pool, so every path counts: OpenTelemetry's db.client.connection.*.

SQLAlchemy's pool events give the create and use times and the connection counts
(PoolWatch). They fire once a checkout has its connection, never when it is asked for, so
the request engine's pool is TimedQueuePool, a QueuePool timing its public connect(): the
wait time, the waiters and the timeouts. Each checkout is charged to the request being
served (app/request_context.py). Under gunicorn the gauges are summed over the live
workers (PROMETHEUS_MULTIPROC_DIR).
"""

import logging
import threading
import time

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine
from sqlalchemy.pool import ConnectionPoolEntry, QueuePool

from app import request_context
from app.database import leaks
from app.database.deadline import remaining_s
from app.database.pool_gate import CheckoutGate

REQUEST_POOL = "request"
HEALTH_POOL = "health"
# OpenTelemetry's advice for db.client.connection.*_time, up to the longest pool timeout.
TIME_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# Where a connection's pool entry keeps its state and its checkout.
OPENED, CHECKOUT, CONNECT_STARTED = "metrics_opened", "metrics_checkout", "metrics_connect_started"

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


class TimedQueuePool(QueuePool):
    """QueuePool timing each checkout from the moment it is asked for.

    Public API only: poolclass is create_engine's documented way to choose a pool, and
    connect() is the pool's public checkout (Engine.connect and Session reach it through
    Engine.raw_connection). The constructor is QueuePool's, so recreate() after a
    dispose makes another TimedQueuePool. A subclass names another pool (pool_named).
    """

    pool_name = REQUEST_POOL

    def __init__(self, creator, pool_size=5, max_overflow=10, timeout=30.0, **kw):
        """QueuePool's, and a gate of one permit per connection it may open (pool_gate.py)."""
        super().__init__(
            creator, pool_size=pool_size, max_overflow=max_overflow, timeout=timeout, **kw
        )
        self.gate = CheckoutGate(pool_size + max_overflow)
        quiet_pool_notes(type(self))

    def connect(self):
        """Check a connection out, counting the wait, the waiters and the timeouts."""
        # With a connection idle the checkout takes it at once; else it queues or connects.
        waits = self.checkedin() == 0
        if waits:
            PENDING.labels(self.pool_name).inc()
        started = time.perf_counter()
        try:
            return self.checkout_within_deadline()
        except sa_exc.TimeoutError:
            TIMEOUTS.labels(self.pool_name).inc()
            raise
        finally:
            waited = time.perf_counter() - started
            if waits:
                PENDING.labels(self.pool_name).dec()
            WAIT_TIME.labels(self.pool_name).observe(waited)
            context = request_context.current()
            if context is not None:
                context.wait_s += waited

    def checkout_within_deadline(self):
        """QueuePool's checkout, once the gate lets it in: within the deadline and the timeout."""
        self.gate.enter(self.timeout(), remaining_s())
        try:
            connection = super().connect()
        except BaseException:
            self.gate.leave()
            raise
        self.gate.hand_to(connection)
        return connection


def quiet_pool_notes(pool_class: type) -> None:
    """Keep a pool class's INFO notes out of the log, as SQLAlchemy's own pools' are.

    SQLAlchemy names a pool's logger after the pool's class, so ours is outside the
    "sqlalchemy" logger, whose WARNING default keeps a pool's notes ("Pool disposed ...
    Current Overflow: -5", "Pool recreating", at every worker's exit) out of the log.
    """
    logging.getLogger(f"{pool_class.__module__}.{pool_class.__name__}").setLevel(logging.WARNING)


def pool_named(pool_name: str) -> type[TimedQueuePool]:
    """A TimedQueuePool class whose metrics carry pool_name (a replica's pool)."""
    return type(f"TimedQueuePool_{pool_name}", (TimedQueuePool,), {"pool_name": pool_name})


class PoolWatch:
    """The pool event listeners of one engine: create and use times, checkouts, and counts.

    The counts are kept in the process and published by the pool monitor: the checkouts
    in a set (adding and discarding are atomic), the open connections under a lock (they
    change only when one is opened or closed). An entry's info says whether its connection
    was counted open and whether it is checked out, so a checkout retried after a failed
    ping, a connection invalidated while in use, or one opened before the listeners came,
    is counted right.
    """

    def __init__(self, pool_name: str, leak_threshold_s: float):
        self.pool_name = pool_name
        self.leak_threshold_s = leak_threshold_s
        self.reset()

    def reset(self) -> None:
        """Start from zero: after a fork, the parent's connections are not this process's."""
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
            CREATE_TIME.labels(self.pool_name).observe(time.perf_counter() - started)
        record.info[OPENED] = True
        with self.lock:
            self.open += 1

    def on_checkout(self, dbapi_connection, record: ConnectionPoolEntry, proxy) -> None:
        """Record the checkout, once, for the request being served if there is one."""
        if CHECKOUT in record.info or OPENED not in record.info:
            return
        checkout = record.info[CHECKOUT] = leaks.open_checkout(
            self.pool_name, proxy, request_context.current(), self.leak_threshold_s
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
            USE_TIME.labels(self.pool_name).observe(leaks.close_checkout(checkout))

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
        CONNECTIONS.labels(self.pool_name, "used").set(used)
        CONNECTIONS.labels(self.pool_name, "idle").set(self.open - used)
