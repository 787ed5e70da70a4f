"""PostgreSQL servers of our own in temporary folders: one cluster, or a primary and its replica.

The shared server on port 5432 allows no replication connections, and silencing its port
would silence every other client on the machine; a private server on a port of its own can
be replicated, stopped or silenced as a test, the bench or `bin/dev stack` needs. It is
still reached through its Unix socket, which iptables does not touch.
As root, PostgreSQL's programs run as the postgres user (PostgreSQL refuses to run as root).
"""

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg2

from deploy.ports import port_outside_ephemeral_range

BIN_DIR = Path("/usr/lib/postgresql/15/bin")
SERVER_USER = "postgres"
# Quick and small: a throwaway server needs no durability.
SERVER_OPTIONS = "-c fsync=off -c full_page_writes=off"


def as_server_user(*command: str) -> list[str]:
    """One of PostgreSQL's programs, run as the postgres user when we are root."""
    argv = [str(BIN_DIR / command[0]), *command[1:]]
    return ["runuser", "-u", SERVER_USER, "--", *argv] if os.geteuid() == 0 else argv


class StartedInside:
    """A context manager over start() and stop(): a start that fails half-way stops too."""

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc_info) -> None:
        self.stop()


class PrivatePostgres(StartedInside):
    """A throwaway cluster on 127.0.0.1:port, its socket in its folder; a context manager.

    Its port lies below the ephemeral range, so that no client's source port can be it
    while the port is silenced (deploy/ports.py).
    """

    def __init__(self, options: str = ""):
        self.options = options  # Extra server options.
        self.folder = Path(tempfile.mkdtemp(prefix="private-pg-"))
        self.port = port_outside_ephemeral_range()
        if os.geteuid() == 0:
            shutil.chown(self.folder, SERVER_USER, SERVER_USER)

    @property
    def data(self) -> Path:
        """The cluster's data directory."""
        return self.folder / "data"

    @property
    def log(self) -> Path:
        """The server's log file."""
        return self.folder / "server.log"

    def run(self, *command: str) -> None:
        """Run one of PostgreSQL's programs; raise with its output when it fails."""
        subprocess.run(as_server_user(*command), check=True, capture_output=True, timeout=60)

    def start(self) -> "PrivatePostgres":
        """Start the server, creating its cluster first (trust) unless it has one."""
        if not (self.data / "PG_VERSION").exists():
            self.run("initdb", "-D", str(self.data), "-A", "trust", "-U", SERVER_USER, "--no-sync")
        listen = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        options = f"{listen} {SERVER_OPTIONS} {self.options}"
        self.run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start")
        return self

    def halt(self) -> None:
        """Stop the server at once, as a crash would; start() brings it back."""
        self.run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        """Stop the server, if it runs, and remove its folder."""
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.SubprocessError):
                self.halt()
        shutil.rmtree(self.folder, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        """A postgresql:// URL over TCP (the path a silence cuts)."""
        return f"postgresql://{SERVER_USER}@127.0.0.1:{self.port}/{database}"

    def socket_url(self, database: str = "postgres") -> str:
        """A postgresql:// URL over the Unix socket (the path that stays open)."""
        return f"postgresql://{SERVER_USER}@/{database}?host={self.folder}&port={self.port}"

    def execute(self, sql: str, params=None, database: str = "postgres") -> list[tuple]:
        """Run one statement in autocommit over the Unix socket; its rows, if any."""
        connection = psycopg2.connect(self.socket_url(database), connect_timeout=5)
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchall() if cursor.description else []
        finally:
            connection.close()

    def backends(self, application_name: str) -> list[tuple[int, str]]:
        """(pid, state) of the client backends named application_name or application_name/…"""
        return self.execute(
            "SELECT pid, state FROM pg_stat_activity WHERE backend_type = 'client backend'"
            " AND (application_name = %s OR application_name LIKE %s)",
            (application_name, application_name + "/%"),
        )


class PostgresPair(StartedInside):
    """A private primary and its streaming replica; a context manager."""

    def __init__(self, replica_options: str = ""):
        self.primary = PrivatePostgres()
        self.replica = PrivatePostgres(replica_options)

    def start(self) -> "PostgresPair":
        """Start the primary, then the replica as its clone."""
        self.primary.start()
        self.clone(self.replica)
        return self

    def clone(self, standby: PrivatePostgres) -> PrivatePostgres:
        """Make standby a streaming replica of the primary (pg_basebackup -R) and start it."""
        standby.run(
            "pg_basebackup",
            *("-h", "127.0.0.1", "-p", str(self.primary.port), "-U", SERVER_USER),
            *("-D", str(standby.data), "-R", "-X", "stream", "--no-sync", "-c", "fast"),
        )
        return standby.start()

    def wait_until_replayed(self, standby: PrivatePostgres | None = None, timeout_s: float = 10):
        """Wait until the replica (or standby) has replayed all the primary has written so far."""
        standby = standby or self.replica
        [(lsn,)] = self.primary.execute("SELECT pg_current_wal_lsn()::text")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            [(caught_up,)] = standby.execute(
                "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)
            )
            if caught_up:
                return
            time.sleep(0.02)
        raise TimeoutError("the replica did not catch up")

    def stop(self) -> None:
        """Stop both servers at once and remove their folders."""
        self.replica.stop()
        self.primary.stop()
