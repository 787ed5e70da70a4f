"""PostgreSQL as the tests see it: throwaway databases (shared with the bench), our backends."""

import time

from bench.dataset import SERVICES_SQL
from bench.postgres import (
    ADMIN_DSN,
    SERVER_URL,
    admin_execute,
    create_database,
    database_name,
    drop_database,
    migrate,
    migrated_database,
)

__all__ = [
    "ADMIN_DSN",
    "SERVER_URL",
    "admin_execute",
    "create_database",
    "database_name",
    "drop_database",
    "insert_service",
    "migrate",
    "migrated_database",
    "our_backends",
    "terminate_backends",
]


def our_backends(application_name: str, dsn: str = ADMIN_DSN) -> list[tuple]:
    """(pid, state, application_name) of the server connections carrying our name."""
    return admin_execute(
        "SELECT pid, state, application_name FROM pg_stat_activity"
        " WHERE application_name = %s OR application_name LIKE %s",
        (application_name, application_name + "/%"),
        dsn,
    )


def terminate_backends(application_name: str, timeout_s: float = 5) -> int:
    """Kill our server connections, as a failover would, and wait until they are gone.

    pg_terminate_backend only signals: a backend says goodbye and leaves a moment later,
    and "after the kill" means once it has.
    """
    killed = admin_execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
        (application_name,),
    )
    deadline = time.monotonic() + timeout_s
    while our_backends(application_name) and time.monotonic() < deadline:
        time.sleep(0.01)
    return len(killed)


def insert_service(url: str) -> int:
    """Insert one service row directly (committed); return its id."""
    return admin_execute(SERVICES_SQL, {"services": 1}, url)[0][0]
