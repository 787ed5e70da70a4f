"""A private PostgreSQL primary and streaming replica in a temporary folder (tests, the stack).

As root, initdb and pg_ctl run as the postgres user (PostgreSQL refuses to run as root).
The shared server allows no replication connections, hence a pair of our own.
"""

import contextlib
import os
import shutil
import subprocess
import tempfile
import time

import psycopg2

from deploy.ports import free_port

BIN_DIR = "/usr/lib/postgresql/15/bin"
SERVER_USER = "postgres"
# Small and quick: a throwaway pair needs few connections and no durability.
SERVER_OPTIONS = "-c fsync=off -c full_page_writes=off"


def as_server_user(*command: str) -> list[str]:
    """command run as the postgres user when we are root, else as ourselves."""
    if os.geteuid() == 0:
        return ["runuser", "-u", SERVER_USER, "--", *command]
    return list(command)


class PostgresPair:
    """A primary and its streaming replica on free loopback ports; a context manager."""

    def __init__(self, replica_options: str = ""):
        self.replica_options = replica_options  # Extra server options for the replica.
        self.folder = tempfile.mkdtemp(prefix="pgpair-")
        self.primary_port = free_port()
        self.replica_port = free_port()

    def url(self, port: int, database: str = "postgres") -> str:
        """A postgresql:// URL of one of the pair's servers."""
        return f"postgresql://{SERVER_USER}@127.0.0.1:{port}/{database}"

    @property
    def primary_url(self) -> str:
        """The primary's postgres database."""
        return self.url(self.primary_port)

    @property
    def replica_url(self) -> str:
        """The replica's postgres database."""
        return self.url(self.replica_port)

    def path(self, name: str) -> str:
        """A path inside the pair's folder."""
        return os.path.join(self.folder, name)

    def run(self, *command: str) -> None:
        """Run a PostgreSQL binary as the server user; raise with its output when it fails."""
        argv = as_server_user(os.path.join(BIN_DIR, command[0]), *command[1:])
        subprocess.run(argv, check=True, capture_output=True, text=True)

    def start(self) -> "PostgresPair":
        """initdb, start the primary, clone it with pg_basebackup -R, start the replica."""
        if os.geteuid() == 0:
            shutil.chown(self.folder, SERVER_USER, SERVER_USER)
        self.run(
            "initdb", "-D", self.path("primary"), "-A", "trust", "-U", SERVER_USER, "--no-sync"
        )
        with open(self.path("primary/pg_hba.conf"), "a") as hba:
            hba.write("host replication all 127.0.0.1/32 trust\n")
        self.start_server("primary", self.primary_port)
        self.run(
            "pg_basebackup",
            *("-h", "127.0.0.1", "-p", str(self.primary_port), "-U", SERVER_USER),
            *("-D", self.path("replica"), "-R", "-X", "stream", "--no-sync", "-c", "fast"),
        )
        self.start_server("replica", self.replica_port, self.replica_options)
        return self

    def start_server(self, name: str, port: int, extra: str = "") -> None:
        """pg_ctl start one server of the pair, listening on 127.0.0.1:port only."""
        options = f"-p {port} -k {self.folder} -c listen_addresses=127.0.0.1 {SERVER_OPTIONS}"
        self.run(
            "pg_ctl",
            *("-D", self.path(name), "-o", f"{options} {extra}"),
            *("-l", self.path(f"{name}.log"), "-w", "start"),
        )

    def stop_server(self, name: str) -> None:
        """Stop one server at once, as a crash would."""
        self.run("pg_ctl", "-D", self.path(name), "-m", "immediate", "-w", "stop")

    def restart_replica(self) -> None:
        """Start the stopped replica again."""
        self.start_server("replica", self.replica_port, self.replica_options)

    def execute(self, port: int, sql: str, database: str = "postgres"):
        """Run one statement in autocommit on one of the servers; return its rows, if any."""
        connection = psycopg2.connect(self.url(port, database))
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql)
                return cursor.fetchall() if cursor.description else None
        finally:
            connection.close()

    def wait_until_replayed(self, timeout_s: float = 10) -> None:
        """Wait until the replica has replayed everything the primary has written so far."""
        (lsn,) = self.execute(self.primary_port, "SELECT pg_current_wal_lsn()::text")[0]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            caught_up = self.execute(
                self.replica_port, f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn"
            )[0][0]
            if caught_up:
                return
            time.sleep(0.02)
        raise TimeoutError("the replica did not catch up")

    def stop(self) -> None:
        """Stop both servers at once and remove the folder."""
        for name in ("replica", "primary"):
            if os.path.exists(self.path(f"{name}/postmaster.pid")):
                # Already stopped by a test: the folder goes all the same.
                with contextlib.suppress(subprocess.CalledProcessError):
                    self.stop_server(name)
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> "PostgresPair":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc_info) -> None:
        self.stop()
