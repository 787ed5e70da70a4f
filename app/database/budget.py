"""The deployment's worst-case connection count, checked against what the server gives.

Behind PgBouncer (DB_POOLER=pgbouncer) the worst case is of client connections: it is
checked against DB_CONNECTION_BUDGET (this host's share of max_client_conn) and PgBouncer's
max_client_conn, while the server is checked against PgBouncer's pool for our database.
"""

from dataclasses import dataclass, replace

import sqlalchemy as sa
from sqlalchemy import Connection, text
from sqlalchemy.engine import Engine, make_url

from app.config import Settings
from app.database.describe import describe
from app.database.engine import pool_less_engine
from app.database.pgbouncer import PoolerSettings, pgbouncer_settings

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


def worst_case(settings: Settings) -> tuple[int, str]:
    """Most server connections the deployment may hold, and the sum that gives it."""
    workers = settings.web_concurrency
    pool, overflow = settings.db_pool_size, settings.db_max_overflow
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


# Why an embedded database's limits are not read.
NO_SERVER_LIMIT = "not PostgreSQL: no server connection limit"


def fetch_server_limits(engine: Engine) -> tuple[ServerLimits | None, str | None]:
    """The server's limits through engine, or None and why they could not be read."""
    if engine.dialect.name != "postgresql":
        return None, NO_SERVER_LIMIT
    try:
        with engine.connect() as connection:
            return read_server_limits(connection), None
    except sa.exc.SQLAlchemyError as error:
        return None, describe(error)


def fetch_pooler_settings(settings: Settings) -> tuple[PoolerSettings | None, str | None]:
    """PgBouncer's settings through PGBOUNCER_ADMIN_URL, or None and why not."""
    if not settings.behind_pgbouncer:
        return None, "DB_POOLER is none"
    if not settings.pgbouncer_admin_url:
        return None, "PGBOUNCER_ADMIN_URL is unset"
    return pgbouncer_settings(settings.pgbouncer_admin_url)


def assess_budget(
    settings: Settings, engine: Engine
) -> tuple[BudgetCheck, ServerLimits | None, str | None]:
    """Read the server (and PgBouncer), then check the budget; with the limits read, or why not.

    engine reaches the server: the health probe's server_engine (DATABASE_DIRECT_URL when
    set; behind PgBouncer without it, PgBouncer lends a server connection for the query).
    """
    limits, limits_error = fetch_server_limits(engine)
    pooler, pooler_error = fetch_pooler_settings(settings)
    verdict = check_budget(settings, limits, limits_error, pooler, pooler_error)
    if settings.database_replica_urls:
        errors, warnings = replica_findings(settings)
        verdict = replace(
            verdict, errors=verdict.errors + errors, warnings=verdict.warnings + warnings
        )
    return verdict, limits, limits_error


def check_budget(
    settings: Settings,
    limits: ServerLimits | None,
    limits_error: str | None = None,
    pooler: PoolerSettings | None = None,
    pooler_error: str | None = None,
) -> BudgetCheck:
    """Compare the worst case with DB_CONNECTION_BUDGET and, when known, the server.

    Behind PgBouncer the worst case meets PgBouncer (pooler: its settings, when readable),
    and PgBouncer's pool for our database meets the server.
    """
    total, arithmetic = worst_case(settings)
    errors, warnings = [], []
    budget = settings.db_connection_budget
    if budget is not None and total > budget:
        errors.append(f"worst case {arithmetic} exceeds DB_CONNECTION_BUDGET {budget}")
    if not settings.behind_pgbouncer:
        more_errors, more_warnings = server_findings(total, arithmetic, limits, limits_error)
    elif pooler is None:
        more_errors, more_warnings = [], [f"PgBouncer's settings not checked: {pooler_error}"]
    else:
        more_errors, more_warnings = pgbouncer_findings(settings, pooler, limits, limits_error)
    if settings.behind_pgbouncer and budget is None:
        warnings.append(
            f"DB_CONNECTION_BUDGET is unset: this host may open {total} client connections to"
            " PgBouncer; set it to PgBouncer's max_client_conn / the number of hosts"
        )
    warnings += more_warnings + thread_warnings(settings)
    return BudgetCheck(total, arithmetic, errors + more_errors, warnings)


def server_findings(
    total: int, arithmetic: str, limits: ServerLimits | None, limits_error: str | None
) -> tuple[list[str], list[str]]:
    """Directly connected: errors and warnings of the worst case against the server."""
    if limits is None:
        # SQLite (development) has no connection limit: nothing was missed, so no warning.
        warnings = (
            []
            if limits_error == NO_SERVER_LIMIT
            else [f"server limits not checked: {limits_error}"]
        )
        return [], warnings
    if total > limits.available:
        return [
            f"worst case {arithmetic} exceeds what the server can give: {server_sum(limits)}"
        ], []
    if total > limits.free:
        return [], [
            f"worst case {total} exceeds the server's free connections now: {limits.available} "
            f"available − {limits.in_use} in use = {limits.free}"
        ]
    return [], []


def replica_worst_case(settings: Settings) -> tuple[int, str]:
    """Most connections the deployment may hold on each replica: its pools (lag checks included)."""
    workers = settings.web_concurrency
    pool, overflow = settings.db_pool_size, settings.db_max_overflow
    total = workers * (pool + overflow)
    return (
        total,
        f"WEB_CONCURRENCY {workers} × (DB_POOL_SIZE {pool} + DB_MAX_OVERFLOW {overflow}) = {total}",
    )


def replica_findings(settings: Settings) -> tuple[list[str], list[str]]:
    """Each replica's pools against what that replica can give, read from the replica itself."""
    total, arithmetic = replica_worst_case(settings)
    errors, warnings = [], []
    for number, url in enumerate(settings.database_replica_urls, start=1):
        name = f"replica{number}"
        engine = pool_less_engine(settings, url, f"{settings.db_application_name}/{name}/budget")
        try:
            limits, limits_error = fetch_server_limits(engine)
        finally:
            engine.dispose()
        more_errors, more_warnings = server_findings(total, arithmetic, limits, limits_error)
        errors += [f"{name}: {error}".replace("the server", name) for error in more_errors]
        warnings += [
            f"{name}: {warning}".replace("server's", f"{name}'s") for warning in more_warnings
        ]
    return errors, warnings


def server_sum(limits: ServerLimits) -> str:
    """What an ordinary role may hold of the server, as a sum."""
    return (
        f"max_connections {limits.max_connections} − superuser_reserved_connections "
        f"{limits.superuser_reserved} = {limits.available}"
    )


def pgbouncer_findings(
    settings: Settings,
    pooler: PoolerSettings,
    limits: ServerLimits | None,
    limits_error: str | None,
) -> tuple[list[str], list[str]]:
    """Behind PgBouncer: this host against max_client_conn, PgBouncer's pool against the server.

    Only this host's own numbers refuse start-up; PgBouncer's are another team's to mend,
    and refusing every host for them would turn a warning into an outage.
    """
    errors, warnings = [], queue_wait_warnings(settings, pooler)
    total, arithmetic = worst_case(settings)
    max_client_conn = int(pooler.config["max_client_conn"])
    if total > max_client_conn:
        errors.append(
            f"worst case {arithmetic} exceeds PgBouncer's max_client_conn {max_client_conn}"
        )
    database = make_url(settings.database_url).database
    servers, servers_arithmetic = pooler.server_connections(database)
    if limits is None:
        warnings.append(f"server limits not checked: {limits_error}")
    elif servers > limits.available:
        warnings.append(
            f"{servers_arithmetic} server connections to {database} exceed what the server"
            f" can give: {server_sum(limits)}"
        )
    return errors, warnings


def queue_wait_warnings(settings: Settings, pooler: PoolerSettings) -> list[str]:
    """Warn when PgBouncer's queue may hold a request past DB_POOL_TIMEOUT + 1 s."""
    wait_s, pool_timeout_s = pooler.config["query_wait_timeout"], settings.db_pool_timeout
    if 0 < wait_s <= pool_timeout_s + 1:
        return []
    shown = "0 (no limit)" if wait_s == 0 else f"{wait_s:g} s"
    return [
        f"PgBouncer's query_wait_timeout {shown} > DB_POOL_TIMEOUT {pool_timeout_s:g} s + 1 s:"
        " a request may wait in PgBouncer's queue longer than the app promises"
    ]


def thread_warnings(settings: Settings) -> list[str]:
    """Warn when a worker has more threads than connections: the rest queue for one."""
    threads = settings.gunicorn_threads
    connections = settings.db_pool_size + settings.db_max_overflow
    if threads <= connections:
        return []
    return [
        f"GUNICORN_THREADS {threads} > DB_POOL_SIZE + DB_MAX_OVERFLOW {connections}: the other"
        f" threads wait up to DB_POOL_TIMEOUT {settings.db_pool_timeout:g} s for a connection"
    ]
