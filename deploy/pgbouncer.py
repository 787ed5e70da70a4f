"""Run the shipped PgBouncer configuration in the foreground, for tests, the bench and bin/dev.

deploy/pgbouncer.ini is read and only what must differ on one machine is overridden: the
port (a free loopback one), the files (a temporary folder), client authentication (trust,
postgres as admin) and the databases (a wildcard entry to the local server, so throwaway
databases pass through). Every pool number is the shipped one unless a caller overrides it
by name, e.g. PgBouncer(default_pool_size=4, query_wait_timeout=2).

    python -m deploy.pgbouncer [--port 6432]   # runs until Ctrl-C
"""

import argparse
import configparser
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg2

from app.database.pgbouncer import admin_rows
from deploy.ports import free_port

SHIPPED_INI = Path(__file__).with_name("pgbouncer.ini")
ADMIN_USER = "postgres"


class PgBouncer:
    """One PgBouncer process on 127.0.0.1, its ini, log and pid file in a folder of its own."""

    def __init__(
        self,
        server: str = "host=127.0.0.1 port=5432",
        port: int = 0,
        folder: Path | None = None,
        **settings: Any,
    ):
        """A PgBouncer for server; its files go in folder, else in a temporary folder."""
        self.server = server
        self.port = port or free_port()
        self.settings = settings
        self.folder = folder or Path(tempfile.mkdtemp(prefix="pgbouncer-"))
        self.process: subprocess.Popen | None = None

    @property
    def ini(self) -> Path:
        """The configuration this instance runs."""
        return self.folder / "pgbouncer.ini"

    @property
    def log(self) -> Path:
        """PgBouncer's log file."""
        return self.folder / "pgbouncer.log"

    def url(self, database: str) -> str:
        """A postgresql:// URL to database through this PgBouncer."""
        return f"postgresql://{ADMIN_USER}@127.0.0.1:{self.port}/{database}"

    @property
    def admin_url(self) -> str:
        """The admin console's URL (PGBOUNCER_ADMIN_URL)."""
        return self.url("pgbouncer")

    def write_ini(self) -> Path:
        """Write the shipped ini with this machine's overrides into the folder."""
        config = configparser.ConfigParser(interpolation=None)
        config.read(SHIPPED_INI)
        config["databases"] = {"*": self.server}
        auth_file = self.folder / "userlist.txt"
        auth_file.write_text(f'"{ADMIN_USER}" ""\n')
        config["pgbouncer"].update(
            listen_addr="127.0.0.1",
            listen_port=str(self.port),
            unix_socket_dir="",
            logfile=str(self.log),
            pidfile=str(self.folder / "pgbouncer.pid"),
            auth_type="trust",
            auth_file=str(auth_file),
            admin_users=ADMIN_USER,
            **{name: str(value) for name, value in self.settings.items()},
        )
        with self.ini.open("w") as file:
            config.write(file)
        if os.geteuid() == 0:  # PgBouncer runs as postgres and writes its log and pid here.
            shutil.chown(self.folder, ADMIN_USER)
        return self.ini

    def max_client_conn(self) -> str:
        """The max_client_conn of the ini this instance runs (write_ini first)."""
        config = configparser.ConfigParser(interpolation=None)
        config.read(self.ini)
        return config["pgbouncer"]["max_client_conn"]

    @property
    def command(self) -> list[str]:
        """The foreground command line; as root, PgBouncer must be told whom to run as."""
        run_as = ["-u", ADMIN_USER] if os.geteuid() == 0 else []
        return ["pgbouncer", *run_as, str(self.ini)]

    def start(self, timeout_s: float = 10) -> "PgBouncer":
        """Start PgBouncer and wait until its admin console answers."""
        self.write_ini()
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"pgbouncer exited {self.process.returncode}:\n{self.output()}")
            if self.answers():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"pgbouncer did not answer within {timeout_s} s:\n{self.output()}")

    def answers(self) -> bool:
        """Whether the admin console accepts a SHOW."""
        try:
            self.admin("SHOW VERSION")
        except psycopg2.Error:
            return False
        return True

    def stop(self, timeout_s: float = 5) -> None:
        """Safe shutdown (SIGINT waits for transactions to end), then immediate, then kill."""
        if self.process is None or self.process.poll() is not None:
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout_s)
                return
            except subprocess.TimeoutExpired:
                pass
        self.process.kill()
        self.process.wait()

    def restart(self) -> None:
        """Stop and start again on the same port, as an operator's restart does."""
        self.stop()
        self.start()

    def admin(self, command: str) -> list[dict[str, Any]]:
        """Run one admin console command; its rows as dictionaries."""
        return admin_rows(self.admin_url, command)

    def show(self, what: str) -> list[dict[str, Any]]:
        """SHOW what (POOLS, CLIENTS, SERVERS, DATABASES, CONFIG…) as dictionaries."""
        return self.admin(f"SHOW {what}")

    def show_clients(self, database: str | None = None) -> list[dict[str, Any]]:
        """Client connections, of one database or all but the admin console's."""
        clients = self.show("CLIENTS")
        if database is None:
            return [client for client in clients if client["database"] != "pgbouncer"]
        return [client for client in clients if client["database"] == database]

    def pool(self, database: str) -> dict[str, Any]:
        """database's SHOW POOLS row for ADMIN_USER (empty before any client used it)."""
        rows = self.show("POOLS")
        return next((row for row in rows if row["database"] == database), {})

    def pause(self, database: str = "") -> None:
        """PAUSE: wait for transactions to end, then hold every new one until resume()."""
        self.admin(f"PAUSE {database}".strip())

    def resume(self) -> None:
        """RESUME after pause()."""
        self.admin("RESUME")

    def output(self) -> str:
        """What PgBouncer logged so far."""
        return self.log.read_text() if self.log.exists() else ""

    def close(self) -> None:
        """Stop PgBouncer and remove its folder."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> "PgBouncer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


def main() -> None:
    """Run the shipped configuration in the foreground until Ctrl-C (bin/dev stack)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=6432)
    parser.add_argument("--server", default="host=127.0.0.1 port=5432")
    args = parser.parse_args()
    with PgBouncer(args.server, args.port) as bouncer:
        print(f"pgbouncer: {bouncer.url('DATABASE')} (admin: {bouncer.admin_url})", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            bouncer.process.wait()


if __name__ == "__main__":
    main()
