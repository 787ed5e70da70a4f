"""A PostgreSQL server of the test's own, and a silence of its TCP port, on loopback.

Silencing the shared server's port 5432 would silence every other client on the machine;
a private server on a port of its own can be silenced for as long as a test needs, and is
still watched through its Unix socket, which iptables does not touch.
"""

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg2

from tests.tcp_proxy import port_outside_ephemeral_range

BIN = Path("/usr/lib/postgresql/15/bin")
OWNER = "postgres"


class PrivatePostgres:
    """initdb, start and stop a throwaway cluster on 127.0.0.1:port, socket in its folder."""

    def __init__(self):
        self.folder = Path(tempfile.mkdtemp(prefix="private-pg-"))
        self.port = port_outside_ephemeral_range()
        shutil.chown(self.folder, OWNER)

    @property
    def data(self) -> Path:
        """The cluster's data directory."""
        return self.folder / "data"

    def as_owner(self, *command: str) -> None:
        """Run one of PostgreSQL's programs as the postgres user."""
        subprocess.run(
            ["runuser", "-u", OWNER, "--", str(BIN / command[0]), *command[1:]],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> "PrivatePostgres":
        """Create the cluster (trust, no fsync: it is thrown away) and start it."""
        self.as_owner("initdb", "-D", str(self.data), "-A", "trust", "-U", OWNER, "--no-sync")
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.folder / "server.log")
        self.as_owner("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")
        return self

    def stop(self) -> None:
        """Stop the cluster at once and remove its folder."""
        with contextlib.suppress(subprocess.SubprocessError):
            self.as_owner("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)

    def url(self, database: str) -> str:
        """A postgresql:// URL over TCP (the path a silence cuts)."""
        return f"postgresql://{OWNER}@127.0.0.1:{self.port}/{database}"

    def socket_url(self, database: str) -> str:
        """A postgresql:// URL over the Unix socket (the path that stays open)."""
        return f"postgresql://{OWNER}@/{database}?host={self.folder}&port={self.port}"

    def execute(self, sql: str, params=None, database: str = "postgres") -> list[tuple]:
        """Run one statement over the Unix socket; its rows, if any."""
        connection = psycopg2.connect(
            host=str(self.folder), port=self.port, user=OWNER, dbname=database, connect_timeout=5
        )
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchall() if cursor.description else []
        finally:
            connection.close()

    def backends(self, application_name: str) -> list[tuple]:
        """(pid, state) of the client backends whose application_name starts with ours."""
        return self.execute(
            "SELECT pid, state FROM pg_stat_activity WHERE backend_type = 'client backend'"
            " AND (application_name = %s OR application_name LIKE %s)",
            (application_name, application_name + "/%"),
        )

    def __enter__(self) -> "PrivatePostgres":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


def iptables_rules(port: int) -> list[list[str]]:
    """The two rules that drop every loopback packet to and from port."""
    return [
        ["INPUT", "-i", "lo", "-p", "tcp", direction, str(port), "-j", "DROP"]
        for direction in ("--dport", "--sport")
    ]


@contextlib.contextmanager
def silenced(port: int) -> Iterator[None]:
    """Drop every packet to and from a loopback port while inside: a silent network."""
    added = []
    try:
        for rule in iptables_rules(port):
            subprocess.run(["iptables", "-I", *rule], check=True, timeout=10)
            added.append(rule)
        yield
    finally:
        for rule in added:
            subprocess.run(["iptables", "-D", *rule], check=True, timeout=10)
