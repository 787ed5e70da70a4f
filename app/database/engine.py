"""Engine options: the bounded pool and the per-connection server settings."""

from typing import Any

from app.config import is_postgresql

# A server that vanishes without a reset (failover, cable) is noticed within about 30 s,
# idle or mid-call, instead of hanging a worker until the kernel gives up (minutes).
TCP_LIVENESS = {
    "keepalives": 1,
    "keepalives_idle": 15,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,
}


def engine_options(settings: dict[str, Any]) -> dict[str, Any]:
    """SQLAlchemy engine options for the request pool of one process."""
    if is_in_memory_sqlite(settings["DATABASE_URL"]):
        return {}  # Flask-SQLAlchemy shares one connection (StaticPool): nothing to size.
    options = {
        "pool_size": settings["DB_POOL_SIZE"],
        "max_overflow": settings["DB_MAX_OVERFLOW"],
        "pool_timeout": settings["DB_POOL_TIMEOUT"],
        "pool_recycle": settings["DB_POOL_RECYCLE"],
        # DB_POOL_PRE_PING installs pre_ping.py's windowed ping instead (see init_app).
        "pool_pre_ping": False,
        "hide_parameters": True,  # Statement parameters (emails, hashes) never reach a log.
    }
    if is_postgresql(settings["DATABASE_URL"]):
        options["connect_args"] = connect_args(settings, settings["DB_APPLICATION_NAME"])
    return options


def is_in_memory_sqlite(url: str) -> bool:
    """Whether url names an in-memory SQLite database."""
    return url in ("sqlite://", "sqlite:///:memory:") or "mode=memory" in url


def connect_args(settings: dict[str, Any], application_name: str) -> dict[str, Any]:
    """psycopg2 connection arguments: timeouts, keepalives and our application_name."""
    server_options = (
        f"-c statement_timeout={settings['DB_STATEMENT_TIMEOUT']} "
        f"-c idle_in_transaction_session_timeout={settings['DB_IDLE_IN_TRANSACTION_TIMEOUT']}"
    )
    return {
        "connect_timeout": settings["DB_CONNECT_TIMEOUT"],
        "application_name": application_name,
        "options": server_options,
        **TCP_LIVENESS,
    }
