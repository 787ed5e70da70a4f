"""The server's statement and idle-in-transaction timeouts, on every statement we send.

Straight to PostgreSQL they travel once, as startup options of each connection (`-c …`),
and cost nothing after. PgBouncer in transaction mode refuses that startup parameter: there
each transaction carries them (pgbouncer.py).
"""

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from app.config import Settings
from app.database.describe import describe

# Each server setting we rely on, and the variable that sets it.
SERVER_SETTINGS = {
    "statement_timeout": "DB_STATEMENT_TIMEOUT",
    "idle_in_transaction_session_timeout": "DB_IDLE_IN_TRANSACTION_TIMEOUT",
}


def server_settings(settings: Settings) -> dict[str, int]:
    """The server-side limits every statement of ours runs under, in milliseconds."""
    return {name: settings.variable(variable) for name, variable in SERVER_SETTINGS.items()}


# The server's side of a connection the network lost: its keepalives and unacknowledged
# data end the socket within about 30 s (as engine.py's TCP_LIVENESS does on ours), and a
# backend busy with a statement looks at its socket every 5 s, so no backend outlives its
# client by much more than half a minute (PostgreSQL 14+).
SERVER_LIVENESS = {
    "tcp_keepalives_idle": 15,
    "tcp_keepalives_interval": 5,
    "tcp_keepalives_count": 3,
    "tcp_user_timeout": 30_000,
    "client_connection_check_interval": 5_000,
}


def startup_options(settings: Settings) -> str:
    """The limits and the server's liveness as libpq's `options`, for a direct connection."""
    options = {**server_settings(settings), **SERVER_LIVENESS}
    return " ".join(f"-c {name}={value}" for name, value in options.items())


def read_effective_settings(engine: Engine) -> dict[str, int]:
    """The limits a statement of engine's really runs under, in milliseconds, as the server says."""
    names = list(SERVER_SETTINGS)
    columns = ", ".join(
        f"(SELECT setting::int FROM pg_settings WHERE name = '{name}')" for name in names
    )
    with engine.connect() as connection:
        row = connection.exec_driver_sql(f"SELECT {columns}").one()
    return dict(zip(names, row, strict=True))


def settings_mismatches(engine: Engine, settings: Settings) -> list[str]:
    """Each limit the server applies differently from our settings, in words; [] when all hold."""
    wanted = server_settings(settings)
    effective = read_effective_settings(engine)
    return [
        f"{name} is {effective[name]} ms on the server, not {SERVER_SETTINGS[name]} {wanted[name]}"
        for name in SERVER_SETTINGS
        if effective[name] != wanted[name]
    ]


def settings_warnings(engine: Engine, settings: Settings) -> list[str]:
    """What start-up and db-info warn about the limits: mismatches, or that none could be read."""
    if engine.dialect.name != "postgresql":
        return []
    try:
        return settings_mismatches(engine, settings)
    except sa.exc.SQLAlchemyError as error:
        return [f"server settings not checked: {describe(error)}"]
