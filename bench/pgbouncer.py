"""A private PgBouncer in transaction mode for the many-hosts scenario, on a free loopback port.

Stock PgBouncer 1.18 from Debian, run in the foreground with its ini, auth file and log in a
temporary folder: a wildcard database entry passes the bench's throwaway database through,
and trust authentication with postgres as admin opens the admin console for SHOW POOLS.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg2
import psycopg2.extras

from bench.servers import free_port

USER = "postgres"
READY_TIMEOUT_S = 10
STOP_TIMEOUT_S = 10
INI = """\
[databases]
* = host=127.0.0.1 port=5432

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder}/users.txt
admin_users = {user}
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = {max_client_conn}
logfile = {folder}/pgbouncer.log
"""


class PgBouncer:
    """One PgBouncer process, started on entering and stopped on leaving."""

    def __init__(self, pool_size: int, max_client_conn: int = 200):
        self.pool_size = pool_size
        self.max_client_conn = max_client_conn
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="bench-pgbouncer-"))
        self.process: subprocess.Popen | None = None

    def url(self, database: str) -> str:
        """A postgresql:// URL of database through this PgBouncer."""
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    @property
    def admin_url(self) -> str:
        """The admin console (PGBOUNCER_ADMIN_URL)."""
        return self.url("pgbouncer")

    def write_files(self) -> Path:
        """The ini and auth file, readable by the user PgBouncer runs as."""
        ini = self.folder / "pgbouncer.ini"
        settings = {"port": self.port, "folder": self.folder, "user": USER}
        ini.write_text(
            INI.format(**settings, pool_size=self.pool_size, max_client_conn=self.max_client_conn)
        )
        (self.folder / "users.txt").write_text(f'"{USER}" ""\n')
        if os.geteuid() == 0:
            for path in (self.folder, *self.folder.iterdir()):
                shutil.chown(path, USER)
        return ini

    def __enter__(self) -> "PgBouncer":
        ini = self.write_files()
        # It refuses to run as root: -u names the user it switches to.
        run_as = ["-u", USER] if os.geteuid() == 0 else []
        self.process = subprocess.Popen(
            ["pgbouncer", *run_as, str(ini)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            self.wait_until_ready()
        except BaseException:
            self.__exit__()
            raise
        return self

    def wait_until_ready(self) -> None:
        """Wait until the admin console answers, or fail with PgBouncer's log."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                self.show("VERSION")
                return
            except psycopg2.OperationalError:
                time.sleep(0.05)
        raise RuntimeError(f"pgbouncer did not become ready:\n{self.log()}")

    def __exit__(self, *exc) -> None:
        try:
            if self.process is not None and self.process.poll() is None:
                self.process.send_signal(signal.SIGINT)
                try:
                    self.process.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def show(self, what: str) -> list[dict]:
        """SHOW what on the admin console, as dictionaries."""
        connection = psycopg2.connect(self.admin_url)
        # The console runs no transactions: psycopg2 must send no BEGIN.
        connection.autocommit = True
        try:
            with connection.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cursor:
                cursor.execute(f"SHOW {what}")
                return [dict(row) for row in cursor.fetchall()]
        finally:
            connection.close()

    def log(self) -> str:
        """What PgBouncer logged so far."""
        path = self.folder / "pgbouncer.log"
        return path.read_text() if path.exists() else ""
