"""The deployment's worst-case connection count, checked against what the server gives."""

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, text
from sqlalchemy.engine import Engine

# Each worker may hold one more connection than its pool: the health probe's own.
HEALTH_PROBE_CONNECTIONS = 1


@dataclass(frozen=True)
class ServerLimits:
    """What a PostgreSQL server can give, and what it is giving now."""

    max_connections: int
    superuser_reserved: int
    in_use: int

    @property
    def available(self) -> int:
        """Connections an ordinary role may ever hold."""
        return self.max_connections - self.superuser_reserved

    @property
    def free(self) -> int:
        """Connections still free right now."""
        return self.available - self.in_use


@dataclass(frozen=True)
class BudgetCheck:
    """The verdict on a configuration: errors refuse start-up, warnings are printed."""

    worst_case: int
    arithmetic: str
    errors: list[str]
    warnings: list[str]


def worst_case(settings: dict[str, Any]) -> tuple[int, str]:
    """Most server connections the deployment may hold, and the sum that gives it."""
    workers = settings["WEB_CONCURRENCY"]
    pool, overflow = settings["DB_POOL_SIZE"], settings["DB_MAX_OVERFLOW"]
    total = workers * (pool + overflow + HEALTH_PROBE_CONNECTIONS)
    arithmetic = (
        f"WEB_CONCURRENCY {workers} × (DB_POOL_SIZE {pool} + DB_MAX_OVERFLOW {overflow}"
        f" + health probe {HEALTH_PROBE_CONNECTIONS}) = {total}"
    )
    return total, arithmetic


def read_server_limits(connection: Connection) -> ServerLimits:
    """Read max_connections, the superuser reserve and the connections in use."""
    row = connection.execute(
        text(
            "SELECT current_setting('max_connections')::int,"
            " current_setting('superuser_reserved_connections')::int,"
            " (SELECT count(*) FROM pg_stat_activity"
            "  WHERE backend_type = 'client backend' AND pid <> pg_backend_pid())"
        )
    ).one()
    return ServerLimits(*row)


def fetch_server_limits(engine: Engine) -> tuple[ServerLimits | None, str | None]:
    """The server's limits through engine, or None and why they could not be read."""
    if engine.dialect.name != "postgresql":
        return None, "not PostgreSQL: no server connection limit"
    try:
        with engine.connect() as connection:
            return read_server_limits(connection), None
    except sa.exc.SQLAlchemyError as error:
        original = getattr(error, "orig", None) or error
        return None, str(original).strip().splitlines()[0]


def check_budget(
    settings: dict[str, Any], limits: ServerLimits | None, limits_error: str | None = None
) -> BudgetCheck:
    """Compare the worst case with DB_CONNECTION_BUDGET and, when known, the server."""
    total, arithmetic = worst_case(settings)
    errors, warnings = [], []
    budget = settings["DB_CONNECTION_BUDGET"]
    if budget is not None and total > budget:
        errors.append(f"worst case {arithmetic} exceeds DB_CONNECTION_BUDGET {budget}")
    if limits is None:
        warnings.append(f"server limits not checked: {limits_error}")
    elif total > limits.available:
        errors.append(
            f"worst case {arithmetic} exceeds what the server can give: max_connections "
            f"{limits.max_connections} − superuser_reserved_connections "
            f"{limits.superuser_reserved} = {limits.available}"
        )
    elif total > limits.free:
        warnings.append(
            f"worst case {total} exceeds the server's free connections now: {limits.available} "
            f"available − {limits.in_use} in use = {limits.free}"
        )
    warnings += thread_warnings(settings)
    return BudgetCheck(total, arithmetic, errors, warnings)


def thread_warnings(settings: dict[str, Any]) -> list[str]:
    """Warn when a worker has more threads than connections: the rest queue for one."""
    threads = settings["GUNICORN_THREADS"]
    connections = settings["DB_POOL_SIZE"] + settings["DB_MAX_OVERFLOW"]
    if threads <= connections:
        return []
    return [
        f"GUNICORN_THREADS {threads} > DB_POOL_SIZE + DB_MAX_OVERFLOW {connections}: the other"
        f" threads wait up to DB_POOL_TIMEOUT {settings['DB_POOL_TIMEOUT']:g} s for a connection"
    ]
