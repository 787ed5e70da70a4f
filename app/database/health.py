"""The database's health as /api/health and `flask db-info` report it."""

import threading
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from app.config import is_postgresql
from app.database.engine import connect_args

HEALTH_SUFFIX = "/health"


class HealthProbe:
    """Checks the database on a connection of its own, so it answers when the pool is full.

    The probe opens one connection at a time per process (NullPool under a lock) and closes
    it straight away: it holds nothing between checks, and its worst case is one connection.
    """

    def __init__(self, settings: dict[str, Any]):
        self.settings = settings
        self.name = settings["DB_APPLICATION_NAME"]
        self.lock = threading.Lock()
        self.engine = self.create_engine()

    def create_engine(self) -> Engine:
        """A pool-less engine with the request pool's timeouts."""
        url = self.settings["DATABASE_URL"]
        options: dict[str, Any] = {"poolclass": NullPool, "hide_parameters": True}
        if is_postgresql(url):
            options["connect_args"] = connect_args(self.settings, self.name + HEALTH_SUFFIX)
        return sa.create_engine(url, **options)

    def check(self, pool_engine: Engine) -> dict[str, Any]:
        """Report connectivity, our server connections and this process's pool."""
        report = {"connected": False, "activeConnections": None, "pool": pool_status(pool_engine)}
        wait_s = self.settings["DB_CONNECT_TIMEOUT"]
        if not self.lock.acquire(timeout=wait_s):
            report["error"] = "another health check is still waiting for the database"
            return report
        try:
            report["activeConnections"] = self.count_connections(pool_engine)
            report["connected"] = True
        except sa.exc.SQLAlchemyError as error:
            report["error"] = describe(error)
        finally:
            self.lock.release()
        return report

    def count_connections(self, pool_engine: Engine) -> int:
        """Server connections carrying our application_name (SQLite: this pool's checked out)."""
        with self.engine.connect() as connection:
            if connection.dialect.name != "postgresql":
                connection.execute(sa.text("SELECT 1"))
                return getattr(pool_engine.pool, "checkedout", lambda: 0)()
            return connection.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name"
                    " OR left(application_name, length(:name) + 1) = :name || '/'"
                ),
                {"name": self.name},
            ).scalar_one()

    def dispose(self) -> None:
        """Drop connections; the probe keeps none, so this only resets the engine."""
        self.engine.dispose(close=False)


def pool_status(engine: Engine) -> dict[str, Any]:
    """This process's pool: its bounds and what is in use right now."""
    pool = engine.pool
    status: dict[str, Any] = {"class": type(pool).__name__}
    if hasattr(pool, "checkedout"):
        status.update(
            size=pool.size(),
            maxOverflow=getattr(pool, "_max_overflow", 0),
            checkedOut=pool.checkedout(),
            overflow=max(pool.overflow(), 0),
            idle=pool.checkedin(),
            timeoutSeconds=pool.timeout(),
        )
    return status


def describe(error: Exception) -> str:
    """The first line of a database error, without SQLAlchemy's background link."""
    original = getattr(error, "orig", None) or error
    return (
        str(original).strip().splitlines()[0] if str(original).strip() else type(original).__name__
    )


def health_report(probe: HealthProbe, pool_engine: Engine) -> tuple[dict[str, Any], int]:
    """The /api/health body and status code."""
    database = probe.check(pool_engine)
    ok = database["connected"]
    body = {
        "status": "ok" if ok else "error",
        "database": database,
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    return body, 200 if ok else 503
