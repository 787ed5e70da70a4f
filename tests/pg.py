"""PostgreSQL as the tests see it: throwaway databases (shared with the bench), our backends."""

import time
from pathlib import Path

import pytest

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
    "ServerLog",
    "admin_execute",
    "create_database",
    "database_name",
    "drop_database",
    "insert_service",
    "migrate",
    "migrated_database",
    "our_backends",
    "server_log_path",
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


class ServerLog:
    """PostgreSQL's own log, read from where it stood when this was made."""

    def __init__(self):
        self.path = server_log_path()
        self.start = self.path.stat().st_size

    def lines_about(self, database: str) -> list[str]:
        """The lines written since, by sessions on database (log_line_prefix's user@db)."""
        time.sleep(0.5)  # The server writes its log a moment after it answers.
        with self.path.open("rb") as log:
            log.seek(self.start)
            text = log.read().decode("utf-8", "replace")
        return [line for line in text.splitlines() if f"@{database} " in line]


def server_log_path() -> Path:
    """The file the server logs to: its logging collector's, or Debian's under /var/log."""
    current = admin_execute("SELECT pg_current_logfile()")[0][0]
    if current is not None:
        data_directory = admin_execute("SHOW data_directory")[0][0]
        return Path(data_directory) / current
    logs = sorted(Path("/var/log/postgresql").glob("*.log"), key=lambda path: path.stat().st_mtime)
    if not logs:
        pytest.skip("PostgreSQL's log is not where this test can read it")
    return logs[-1]
