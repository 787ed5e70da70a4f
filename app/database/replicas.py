"""Streaming replicas: one bounded pool each, their lag, and the one place reads are routed.

`read_stale_ok(work)` is the only way a read reaches a replica: it runs work(session) on a
replica within DB_REPLICA_MAX_LAG_MS (and, for a client that sent X-Read-After-LSN, one that
has replayed that far), chosen at random among those, and on the primary otherwise. Inside
a unit of work, or with no DATABASE_REPLICA_URLS, it is `reading()` on the primary, as
before. A replica that fails mid-read is marked down and the read runs again on the primary.

Each process measures each replica's lag in a thread of its own, about once a second, so a
request never waits for a measurement: it reads the last one, and one older than
STALE_AFTER_S (a check stuck connecting to a silent replica) counts as "not known".
"""

import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psycopg2
import sqlalchemy as sa
from flask import Flask, current_app, g, has_request_context, request
from flask.signals import request_started
from prometheus_client import Gauge
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.config import Settings, app_settings
from app.database.describe import describe
from app.database.engine import connect_args
from app.database.health import pool_status
from app.database.pool_watch import pool_named
from app.database.pre_ping import install_pre_ping
from app.database.session import WRITING, reading
from app.extensions import db

log = logging.getLogger(__name__)
T = TypeVar("T")

READ_AFTER_HEADER = "X-Read-After-LSN"
# A pg_lsn as PostgreSQL writes it (16/B374D848): two hexadecimal halves of 32 bits.
LSN_PATTERN = "^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$"
LSN = re.compile(LSN_PATTERN)
CHECK_INTERVAL_S = 1.0
# A measurement older than this is not believed: the replica serves no reads until a new one.
STALE_AFTER_S = 3 * CHECK_INTERVAL_S
# Where a request notes that it committed a write (g), for its X-Read-After-LSN.
WROTE = "replicas_wrote"
REPLICA_STATUS = sa.text(
    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text,"
    " pg_last_wal_receive_lsn()::text,"
    " extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()) * 1000"
)
# How far the primary has written its WAL: a replica that replayed this far is caught up.
# (The insert position can sit past a page header no record fills yet: never reached idle.)
PRIMARY_POSITION = sa.text("SELECT pg_current_wal_lsn()::text")
# What a read after a commit must see: the insert position is past the end of every commit
# made so far, flushed or not (synchronous_commit off). A replica reaches it, at worst, with
# the next record; until then the client reads from the primary.
COMMITTED_POSITION = sa.text("SELECT pg_current_wal_insert_lsn()::text")

LAG = Gauge(
    "db_replica_lag_seconds",
    "How far behind the primary the replica's replay is (0: caught up)",
    ["pool_name"],
    multiprocess_mode="livemax",
)
SERVING = Gauge(
    "db_replica_serving",
    "1 while the replica serves reads: reachable, in recovery and within DB_REPLICA_MAX_LAG_MS",
    ["pool_name"],
    multiprocess_mode="livemin",
)
MAX_LAG = Gauge(
    "db_replica_max_lag_seconds",
    "DB_REPLICA_MAX_LAG_MS, in seconds",
    ["pool_name"],
    multiprocess_mode="livemax",
)


def parse_lsn(text: str | None) -> int | None:
    """A pg_lsn such as 16/B374D848 as one number, or None for anything else."""
    if not text or not LSN.fullmatch(text):
        return None
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


@dataclass(frozen=True)
class ReplicaState:
    """One measurement of a replica, or why it could not be made."""

    connected: bool
    lag_ms: float | None = None
    replay_lsn: int | None = None
    reason: str | None = None  # Why it serves no reads: down, promoted, lagging, lag unknown.
    detail: str | None = None  # The driver's words, for the log and db-info only.
    checked_at: float = field(default_factory=time.monotonic)

    @property
    def fresh(self) -> bool:
        """Whether the measurement is recent enough to route by."""
        return time.monotonic() - self.checked_at < STALE_AFTER_S


def measure(connected_row: tuple, primary_lsn: int | None, max_lag_ms: int) -> ReplicaState:
    """The state a replica's status row gives, against the primary's position.

    pg_last_xact_replay_timestamp() is the time of the last commit replayed, which grows
    on an idle primary without any lag: the replica is caught up (lag 0) when it has
    replayed up to the primary's position (or, that unknown, all it received); only when
    behind is its lag the age of that last commit, an upper bound on how old its data is.
    """
    in_recovery, replay_text, receive_text, replay_age_ms = connected_row
    if not in_recovery:
        return ReplicaState(True, reason="promoted: not in recovery")
    replay_lsn = parse_lsn(replay_text)
    target = primary_lsn if primary_lsn is not None else parse_lsn(receive_text)
    if replay_lsn is not None and target is not None and replay_lsn >= target:
        return ReplicaState(True, 0.0, replay_lsn)
    if replay_age_ms is None:
        return ReplicaState(True, None, replay_lsn, reason="lag unknown")
    lag_ms = max(float(replay_age_ms), 0.0)
    reason = "lagging past DB_REPLICA_MAX_LAG_MS" if lag_ms > max_lag_ms else None
    return ReplicaState(True, lag_ms, replay_lsn, reason=reason)


class Replica:
    """One replica: its bounded pool in this process and its latest measurement."""

    def __init__(self, name: str, url: str, settings: Settings):
        self.name = name
        self.settings = settings
        self.engine = create_replica_engine(name, url, settings)
        self.state = ReplicaState(False, reason="not measured yet", checked_at=0.0)

    def serves(self, after_lsn: int | None) -> bool:
        """Whether a read that must see after_lsn (None: anything recent) may come here."""
        state = self.state
        if not (state.connected and state.reason is None and state.fresh):
            return False
        return after_lsn is None or (state.replay_lsn or 0) >= after_lsn

    def refresh(self, primary_lsn: int | None) -> None:
        """Measure the replica now, on a connection of its pool; publish the result."""
        try:
            with self.engine.connect() as connection:
                row = connection.execute(REPLICA_STATUS).one()
            state = measure(tuple(row), primary_lsn, self.settings.db_replica_max_lag_ms)
        except (sa.exc.SQLAlchemyError, psycopg2.Error) as error:
            state = ReplicaState(False, reason="cannot be reached", detail=describe(error))
        self.publish(state)

    def mark_down(self, error: Exception) -> None:
        """A read failed here: serve no more reads until the next measurement succeeds."""
        self.publish(ReplicaState(False, reason="cannot be reached", detail=describe(error)))

    def publish(self, state: ReplicaState) -> None:
        """Keep state for routing, log a change of verdict, and set the gauges."""
        if state.reason != self.state.reason and self.state.checked_at:
            log.warning("replica %s %s", self.name, verdict(state))
        self.state = state
        SERVING.labels(self.name).set(0 if state.reason else 1)
        if state.lag_ms is not None:
            LAG.labels(self.name).set(state.lag_ms / 1000)


def verdict(state: ReplicaState) -> str:
    """What a change of state means for reads, in words for the log."""
    if state.reason is None:
        return "serves reads again"
    lag = f", {state.lag_ms:.0f} ms behind" if state.lag_ms is not None else ""
    detail = f": {state.detail}" if state.detail else ""
    return f"serves no reads, their reads go to the primary: {state.reason}{lag}{detail}"


def replica_connect_args(name: str, settings: Settings) -> dict[str, Any]:
    """The request pool's connection arguments, for a replica reached directly.

    Never through PgBouncer, so the server limits go at login. A statement sent into a
    silent network fails after DB_CONNECT_TIMEOUT instead of the primary's 30 s: the read
    then runs on the primary, which is always there to take it. Only unacknowledged data
    counts, so a long query on a live replica is not cut short.
    """
    arguments = connect_args(settings, f"{settings.db_application_name}/{name}", direct=True)
    arguments["tcp_user_timeout"] = settings.db_connect_timeout * 1000
    return arguments


def create_replica_engine(name: str, url: str, settings: Settings) -> Engine:
    """An engine like the request pool's: bounded, autocommit, same timeouts, its own name."""
    engine = sa.create_engine(
        url,
        hide_parameters=True,
        poolclass=pool_named(name),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        pool_recycle=settings.db_pool_recycle,
        isolation_level="AUTOCOMMIT",
        connect_args=replica_connect_args(name, settings),
    )
    if settings.db_pool_pre_ping:
        install_pre_ping(engine, ping_server=True)
    return engine


class ReplicaSet:
    """The app's replicas, the primary's position, and one monitor thread per replica."""

    def __init__(self, settings: Settings, primary: Engine):
        self.settings = settings
        self.primary = primary
        self.replicas = [
            Replica(f"replica{number}", url, settings)
            for number, url in enumerate(settings.database_replica_urls, start=1)
        ]
        self.pid: int | None = None
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.primary_lsn: tuple[float, int | None] = (0.0, None)

    def start(self) -> None:
        """Start measuring in this process, unless already (threads do not survive a fork)."""
        if self.pid == os.getpid():
            return
        with self.lock:
            if self.pid == os.getpid():
                return
            self.pid = os.getpid()
            self.stopped.clear()
            for replica in self.replicas:
                MAX_LAG.labels(replica.name).set(self.settings.db_replica_max_lag_ms / 1000)
                name = f"replica-monitor-{replica.name}"
                threading.Thread(target=self.watch, args=(replica,), name=name, daemon=True).start()

    def stop(self) -> None:
        """Stop this process's monitor threads (at their next tick)."""
        self.stopped.set()
        self.pid = None

    def watch(self, replica: Replica) -> None:
        """Measure replica about once a second until stopped."""
        while not self.stopped.is_set():
            try:
                replica.refresh(self.primary_position())
            except Exception:
                log.exception("replica monitor failed; it keeps running")
            self.stopped.wait(CHECK_INTERVAL_S)

    def primary_position(self) -> int | None:
        """How far the primary has written its WAL; read at most twice a second per process."""
        read_at, position = self.primary_lsn
        if time.monotonic() - read_at < CHECK_INTERVAL_S / 2:
            return position
        try:
            with self.primary.connect() as connection:
                position = parse_lsn(connection.execute(PRIMARY_POSITION).scalar_one())
        except sa.exc.SQLAlchemyError as error:
            log.warning("the primary's WAL position could not be read: %s", describe(error))
            position = None
        self.primary_lsn = (time.monotonic(), position)
        return position

    def serving(self, after_lsn: int | None) -> list[Replica]:
        """The replicas a read may go to now, in random order."""
        chosen = [replica for replica in self.replicas if replica.serves(after_lsn)]
        random.shuffle(chosen)
        return chosen

    def engines(self) -> dict[str, Engine]:
        """Each replica's engine by pool name."""
        return {replica.name: replica.engine for replica in self.replicas}


def replica_set(app: Flask | None = None) -> ReplicaSet | None:
    """The app's replicas, or None when DATABASE_REPLICA_URLS is unset."""
    return (app or current_app).extensions.get("replicas")


def read_stale_ok(work: Callable[[Session], T], own_writes: bool = False) -> T:
    """Run work(session), a read that may be a little old, on a replica in bounds or the primary.

    own_writes: the client's own data (their orders), which goes to a replica only when the
    client sent X-Read-After-LSN, and then only to one that has replayed that far.
    """
    replicas = replica_set()
    session = db.session()
    after_lsn = client_read_after() if replicas else None
    if replicas is None or session.info.get(WRITING) or (own_writes and after_lsn is None):
        with reading() as session:
            return work(session)
    for replica in replicas.serving(after_lsn or None):
        try:
            with Session(bind=replica.engine, expire_on_commit=False) as replica_session:
                return work(replica_session)
        except (sa.exc.OperationalError, sa.exc.TimeoutError) as error:
            if is_statement_cancelled(error):
                raise
            replica.mark_down(error)
    with reading() as session:
        return work(session)


def is_statement_cancelled(error: Exception) -> bool:
    """Whether the server cancelled the statement for DB_STATEMENT_TIMEOUT (not a failover)."""
    return isinstance(getattr(error, "orig", None), psycopg2.errors.QueryCanceled)


def client_read_after() -> int | None:
    """The LSN the client's X-Read-After-LSN asks to see (0: any), or None without one.

    A header that is not an LSN asks for more than any replica can promise: the primary.
    """
    if not has_request_context() or READ_AFTER_HEADER not in request.headers:
        return None
    position = parse_lsn(request.headers[READ_AFTER_HEADER])
    return position if position is not None else 1 << 64


def note_write(session: Session) -> None:
    """After a commit: when it ended a write of the request, its response names the LSN."""
    if session.info.get(WRITING) and has_request_context():
        g.setdefault(WROTE, True)


def add_read_after_header(response):
    """A response to a request that wrote names the position a read must see (one round trip)."""
    if not g.get(WROTE) or replica_set() is None:
        return response
    try:
        with reading() as session:
            position = session.execute(COMMITTED_POSITION).scalar_one()
    except sa.exc.SQLAlchemyError as error:
        log.warning("no %s: %s", READ_AFTER_HEADER, describe(error))
        return response
    response.headers[READ_AFTER_HEADER] = position
    return response


def start_replica_monitors(app: Flask, **extra) -> None:
    """Start the app's replica measurements in this process unless they are already."""
    app.extensions["replicas"].start()


def install_replicas(app: Flask) -> None:
    """Give the app its replicas, when DATABASE_REPLICA_URLS names any (in database.init_app)."""
    settings = app_settings(app)
    if not settings.database_replica_urls:
        return
    with app.app_context():
        app.extensions["replicas"] = ReplicaSet(settings, db.engine)
    if not event.contains(Session, "after_commit", note_write):
        event.listen(Session, "after_commit", note_write)
    request_started.connect(start_replica_monitors, app)
    app.after_request(add_read_after_header)


def replicas_report(replicas: ReplicaSet, with_hosts: bool = False) -> dict[str, Any]:
    """Each replica by pool name, as /api/health shows it; with_hosts adds URL and detail."""
    report = {}
    for replica in replicas.replicas:
        state = replica.state
        entry: dict[str, Any] = {
            "connected": state.connected and state.fresh,
            "serving": replica.serves(None),
            "lagMs": None if state.lag_ms is None else round(state.lag_ms, 1),
            "pool": pool_status(replica.engine, replicas.settings) | {"class": "TimedQueuePool"},
        }
        if state.reason:
            entry["reason"] = state.reason
        if with_hosts:
            entry["url"] = replica.engine.url.render_as_string(hide_password=True)
            if state.detail:
                entry["detail"] = state.detail
        report[replica.name] = entry
    return report


def add_replicas(body: dict[str, Any], with_hosts: bool = False) -> dict[str, Any]:
    """A health body with database.replicas added, when the app has replicas.

    Replicas never decide the status: with the primary up the service answers, from it.
    """
    replicas = replica_set()
    if replicas is not None:
        body["database"]["replicas"] = replicas_report(replicas, with_hosts)
    return body


def measure_now(replicas: ReplicaSet) -> None:
    """Measure every replica once, here (db-info runs no monitor threads)."""
    for replica in replicas.replicas:
        replica.refresh(replicas.primary_position())
