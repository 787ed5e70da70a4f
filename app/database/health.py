"""The database's health as /api/health and `flask db-info` report it."""

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg2
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from app.config import Settings
from app.database.deadline import limited
from app.database.describe import describe
from app.database.engine import connect_args, pool_less_engine
from app.database.pgbouncer import libpq_url, pool_numbers
from app.models.base import utc_timestamp

log = logging.getLogger(__name__)
HEALTH_SUFFIX = "/health"
# However often health is asked, each process checks the database at most this often.
MAX_AGE_S = 1.0
# The least time a check gets, when waiting for another thread's check took nearly all.
MIN_CHECK_S = 0.2
# Our connections, and whether the server takes writes (a standby or a read-only primary
# does not: app/database/read_only.py), in one round trip.
SERVER_STATE = sa.text(
    "SELECT count(*), NOT pg_is_in_recovery() AND current_setting('transaction_read_only') = 'off'"
    " FROM pg_stat_activity WHERE datname = current_database()"
    " AND (application_name = :name OR left(application_name, length(:name) + 1) = :name || '/')"
)


@dataclass(frozen=True)
class Probe:
    """One check of the database: what a client may see, and the detail for operators."""

    connected: bool
    active_connections: int | None
    accepts_writes: bool | None = None
    checked_at: float = field(default_factory=time.monotonic)
    error: str | None = None
    detail: str | None = None
    pooler: dict[str, Any] | None = None


class HealthProbe:
    """Checks the database on a connection of its own, so it answers when the pool is full.

    The probe opens one connection at a time per process (NullPool under a lock), closes
    it straight away, and keeps its result for MAX_AGE_S: it holds nothing between
    checks, and it costs the server at most one connection per process per second.
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self.name = settings.db_application_name
        self.lock = threading.Lock()
        self.engine = self.create_engine(settings.database_url, direct=False)
        direct_url = settings.database_direct_url
        self.server_engine = self.create_engine(direct_url, True) if direct_url else self.engine
        self.last: Probe | None = None

    def create_engine(self, url: str, direct: bool) -> Engine:
        """A pool-less engine with the request pool's timeouts."""
        return pool_less_engine(self.settings, url, self.name + HEALTH_SUFFIX, direct)

    def probe(self, pool_engine: Engine) -> Probe:
        """The latest check, made now when the last one is older than MAX_AGE_S."""
        wait_s = self.settings.db_connect_timeout
        answer_by = time.monotonic() + wait_s
        if not self.lock.acquire(timeout=wait_s):
            return Probe(False, None, error="the database did not answer a health check in time")
        try:
            if self.last is None or time.monotonic() - self.last.checked_at >= MAX_AGE_S:
                # One bound for the whole check, a silent network included: SPEC's
                # DB_CONNECT_TIMEOUT + 1 s, however long the lock took.
                with limited(max(answer_by - time.monotonic(), MIN_CHECK_S)):
                    self.last = self.check(pool_engine)
            return self.last
        finally:
            self.lock.release()

    def check(self, pool_engine: Engine) -> Probe:
        """Ask the database now: can we reach it, and how many connections are ours.

        Behind PgBouncer with the server's own URL, PgBouncer is only logged in to (it
        answers a login itself; a statement would wait in its queue as long as the requests
        the probe is meant to explain), and the server is asked directly. PgBouncer's
        console, when set, only adds numbers: its failure is reported, not an outage.
        """
        pooler = self.pooler_numbers()
        try:
            if self.server_engine is not self.engine:
                self.log_in_through_pooler()
            active, accepts_writes = self.server_state(pool_engine)
            return Probe(True, active, accepts_writes, pooler=pooler)
        except (sa.exc.SQLAlchemyError, psycopg2.Error) as error:
            detail = describe(error)
            log.warning("health check failed: %s", detail)
            return Probe(
                False, None, error="the database cannot be reached", detail=detail, pooler=pooler
            )

    def log_in_through_pooler(self) -> None:
        """Open a connection through DATABASE_URL and close it, sending no statement."""
        url = libpq_url(self.engine.url.render_as_string(hide_password=False))
        arguments = connect_args(self.settings, self.name + HEALTH_SUFFIX)
        psycopg2.connect(url, **arguments).close()

    def pooler_numbers(self) -> dict[str, Any] | None:
        """PgBouncer's numbers for our database and role, when PGBOUNCER_ADMIN_URL is set."""
        admin_url = self.settings.pgbouncer_admin_url
        if not admin_url:
            return None
        url = self.engine.url
        numbers, reason = pool_numbers(admin_url, url.database, url.username)
        if numbers is None:
            log.warning("PgBouncer's admin console could not be read: %s", reason)
            return {"error": "PgBouncer's admin console cannot be reached"}
        return numbers.report()

    def server_state(self, pool_engine: Engine) -> tuple[int, bool]:
        """This database's server connections with our application_name, and whether the
        server takes writes.

        On SQLite, which has no server: this process's checked-out connections.
        """
        with self.server_engine.connect() as connection:
            if connection.dialect.name != "postgresql":
                connection.execute(sa.text("SELECT 1"))
                pool = pool_engine.pool
                return (pool.checkedout() if hasattr(pool, "checkedout") else 0), True
            count, accepts_writes = connection.execute(SERVER_STATE, {"name": self.name}).one()
            return count, accepts_writes


def pool_status(engine: Engine, settings: Settings) -> dict[str, Any]:
    """This process's pool: its bounds and what is in use right now."""
    pool = engine.pool
    status: dict[str, Any] = {"class": type(pool).__name__}
    if hasattr(pool, "checkedout"):
        status.update(
            size=pool.size(),
            maxOverflow=settings.db_max_overflow,
            checkedOut=pool.checkedout(),
            overflow=max(pool.overflow(), 0),
            idle=pool.checkedin(),
            timeoutSeconds=pool.timeout(),
        )
    return status


def health_report(
    probe: HealthProbe, pool_engine: Engine, with_detail: bool = False
) -> tuple[dict[str, Any], int]:
    """The /api/health body and status code; with_detail adds the driver's words (db-info)."""
    result = probe.probe(pool_engine)
    database: dict[str, Any] = {
        "connected": result.connected,
        "activeConnections": result.active_connections,
        "acceptsWrites": result.accepts_writes,
        "pool": pool_status(pool_engine, probe.settings),
    }
    if result.pooler is not None:
        database["pooler"] = result.pooler
    if result.error:
        database["error"] = result.error
    if with_detail and result.detail:
        database["detail"] = result.detail
    body = {"status": "ok" if result.connected else "error", "database": database}
    body["timestamp"] = utc_timestamp()
    return body, 200 if result.connected else 503
