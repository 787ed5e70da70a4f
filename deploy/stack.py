"""`bin/dev stack`: the production topology on one machine, in the foreground until Ctrl-C.

    clients → nginx (PROXY_PORT) → gunicorn (gunicorn.conf.py, PORT)
            → PgBouncer (deploy/pgbouncer.ini, when DB_POOLER=pgbouncer) → DATABASE_URL
    Prometheus (deploy/prometheus, 127.0.0.1:9090) scrapes METRICS_PORT

With DB_REPLICA=1 the database is a private primary and streaming replica instead
(deploy/private_postgres.py), migrated and seeded: gunicorn gets both, the replica as
DATABASE_REPLICA_URLS (reached directly, PgBouncer or not), and they stop with the stack.

Each part is a real server in the foreground, its configuration, pid and logs in one temporary
folder. The parts start in order, each once it answers, and stop in reverse order when the
stack is interrupted (Ctrl-C, SIGTERM) or when any part exits; none is left running.

To add a part, add a Part to `parts()` at its place in the chain.
"""

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import requests
from limits.storage import storage_from_string
from sqlalchemy.engine import make_url

from app.config import Settings, load_settings
from deploy import nginx
from deploy.pgbouncer import PgBouncer
from deploy.ports import address_taken
from deploy.private_postgres import PostgresPair
from deploy.prometheus import run as prometheus

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
# Prometheus's own default port (PROMETHEUS_PORT moves it); its graph page is for the
# operator at this machine.
PROMETHEUS_ADDRESS = f"{LOOPBACK}:{os.environ.get('PROMETHEUS_PORT', '9090')}"
# Redis's default address: used for rate limits when it answers and none is configured.
LOCAL_REDIS_ADDRESS = f"{LOOPBACK}:6379"
LOCAL_REDIS = f"redis://{LOCAL_REDIS_ADDRESS}/0?socket_timeout=1&socket_connect_timeout=1"


@dataclass
class Part:
    """One server of the stack: its command, how to tell it is ready, and where it logs."""

    name: str
    command: list[str]
    ready: Callable[[], bool]
    log: Path | None = None  # None: the stack's own terminal
    env: dict[str, str] | None = None
    stop_signal: int = signal.SIGTERM
    process: subprocess.Popen | None = field(default=None, init=False)
    log_file: IO[Any] | None = field(default=None, init=False)

    def start(self, timeout_s: float = 30) -> None:
        """Start the process and wait until it is ready; raise if it exits or never is."""
        self.log_file = self.log.open("ab") if self.log else None
        self.process = subprocess.Popen(
            self.command, cwd=ROOT, env=self.env, stdout=self.log_file, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.running():
                raise RuntimeError(f"{self.name} exited {self.process.returncode}\n{self.output()}")
            if self.ready():
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} was not ready within {timeout_s} s\n{self.output()}")

    def running(self) -> bool:
        """Whether the process was started and has not exited."""
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout_s: float = 35) -> None:
        """Ask the process to stop, wait for it, and kill it if it will not."""
        try:
            if self.running():
                self.process.send_signal(self.stop_signal)
                try:
                    self.process.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
        finally:
            if self.log_file:
                self.log_file.close()

    def output(self) -> str:
        """What the process wrote to its log so far (nothing when it logs to the terminal)."""
        if self.log is None or not self.log.exists():
            return ""
        return self.log.read_text(errors="replace")


def answers(url: str, status: int = 200) -> Callable[[], bool]:
    """A ready check: url answers with status."""

    def check() -> bool:
        try:
            return requests.get(url, timeout=1).status_code == status
        except requests.RequestException:  # Refused or too slow yet: not ready.
            return False

    return check


def gunicorn_part(settings: Settings, database: dict[str, str]) -> Part:
    """gunicorn from gunicorn.conf.py on loopback only (clients come through nginx)."""
    address = f"{LOOPBACK}:{settings.port}"
    # One proxy in front: the app believes nginx's X-Forwarded-For, and nothing further.
    env = {**os.environ, "TRUSTED_PROXY_HOPS": "1", **database, **rate_limit_storage()}
    # Every worker must share one key; development's default is random per process.
    env.setdefault("SECRET_KEY", secrets.token_hex(32))
    return Part(
        name="gunicorn",
        command=[sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--bind", address],
        ready=answers(f"http://{address}/api/health/live"),
        env=env,
    )


def rate_limit_storage() -> dict[str, str]:
    """RATELIMIT_STORAGE_URI for gunicorn: the caller's, else this machine's Redis if it answers.

    With memory:// each worker counts alone, and every limit is that many times looser.
    """
    if "RATELIMIT_STORAGE_URI" in os.environ:
        return {}
    if not storage_from_string(LOCAL_REDIS).check():
        print(
            f"stack: no Redis at {LOCAL_REDIS_ADDRESS}: each worker counts rate limits alone",
            flush=True,
        )
        return {}
    print(f"stack: rate limits counted in Redis at {LOCAL_REDIS_ADDRESS}", flush=True)
    return {"RATELIMIT_STORAGE_URI": LOCAL_REDIS}


def nginx_part(
    folder: Path, address: str, port: int, upstream: str, origins: Iterable[str] = ()
) -> Part:
    """deploy/nginx.conf on address:port in front of upstream; ready once it answers at all."""
    config = nginx.write_config(folder, address, port, upstream, origins)
    return Part(
        name="nginx",
        command=nginx.command(config),
        # Its own JSON 404 for an unrouted path: ready even while upstream is down.
        ready=answers(f"http://{address}:{port}/", status=404),
        log=folder / "nginx.out",
    )


def pgbouncer_part(bouncer: PgBouncer) -> Part:
    """deploy/pgbouncer.ini in front of the server; ready once its console answers."""
    bouncer.write_ini()
    # Its own log file is PgBouncer's (it runs as postgres); the part's catches the rest.
    output = bouncer.folder / "pgbouncer.out"
    return Part(name="pgbouncer", command=bouncer.command, ready=bouncer.answers, log=output)


def through_pgbouncer(bouncer: PgBouncer, server_url: str) -> dict[str, str]:
    """gunicorn's database variables when PgBouncer stands between it and the server."""
    return {
        "DATABASE_URL": bouncer.url(make_url(server_url).database),
        "DATABASE_DIRECT_URL": server_url,
        "PGBOUNCER_ADMIN_URL": bouncer.admin_url,
        # This machine is the only host: its share is all of PgBouncer's client connections.
        "DB_CONNECTION_BUDGET": os.environ.get("DB_CONNECTION_BUDGET") or bouncer.max_client_conn(),
    }


def replica_pair_database(pair: PostgresPair) -> dict[str, str]:
    """gunicorn's database variables on the pair, after migrating and seeding its primary."""
    pair.primary.execute("CREATE DATABASE app")
    database = {
        "DATABASE_URL": pair.primary.url("app"),
        "DATABASE_REPLICA_URLS": pair.replica.url("app"),
    }
    # The release commands need a key like any deployment; they sign nothing. They reach
    # the primary itself, PgBouncer or not.
    env = {"SECRET_KEY": secrets.token_hex(32), **os.environ, **database, "DB_POOLER": "none"}
    for command in (["db", "upgrade"], ["seed"]):
        subprocess.run([sys.executable, "-m", "flask", *command], cwd=ROOT, env=env, check=True)
    return database


def prometheus_part(folder: Path, metrics_target: str) -> Part:
    """Prometheus (deploy/prometheus) scraping gunicorn's metrics, its graph page on loopback."""
    prometheus.prepare(folder, metrics_target, scrape_interval="5s")
    return Part(
        name="prometheus",
        command=prometheus.command(folder, PROMETHEUS_ADDRESS),
        ready=answers(f"http://{PROMETHEUS_ADDRESS}/-/ready"),
        log=folder / "prometheus.out",
    )


def metrics_target(settings: Settings) -> str:
    """Where gunicorn's master serves the metrics (host:port)."""
    return f"{settings.metrics_bind}:{settings.metrics_port}"


def parts(settings: Settings, folder: Path, pair: PostgresPair | None = None) -> list[Part]:
    """The servers of the stack in start order: each one's upstream comes before it."""
    upstream = f"{LOOPBACK}:{settings.port}"
    nginx_folder, prometheus_folder = folder / "nginx", folder / "prometheus"
    nginx_folder.mkdir()
    prometheus_folder.mkdir()
    database = replica_pair_database(pair) if pair is not None else {}
    server_url = database.get("DATABASE_URL", settings.database_url)
    database_parts = []
    if settings.behind_pgbouncer:
        # gunicorn's DATABASE_URL points at PgBouncer, which must be up first.
        server = make_url(server_url)
        bouncer_folder = folder / "pgbouncer"
        bouncer_folder.mkdir()
        bouncer = PgBouncer(
            f"host={server.host or LOOPBACK} port={server.port or 5432}", folder=bouncer_folder
        )
        database_parts = [pgbouncer_part(bouncer)]
        database |= through_pgbouncer(bouncer, server_url)
    return [
        *database_parts,
        gunicorn_part(settings, database),
        nginx_part(nginx_folder, LOOPBACK, settings.proxy_port, upstream, settings.cors_origins),
        prometheus_part(prometheus_folder, metrics_target(settings)),
    ]


def run(parts_in_order: list[Part]) -> int:
    """Start every part, wait until one exits or the stack is interrupted, stop them all."""
    started: list[Part] = []
    try:
        for part in parts_in_order:
            started.append(part)
            part.start()
            print(f"stack: {part.name} ready (pid {part.process.pid})", flush=True)
        print("stack: running; Ctrl-C stops every part", flush=True)
        while all(part.running() for part in started):
            time.sleep(0.2)
        failed = next(part for part in started if not part.running())
        print(f"stack: {failed.name} exited {failed.process.returncode}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        # A second Ctrl-C must not cut the stopping short and orphan a part.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for part in reversed(started):
            part.stop()
        print("stack: stopped", flush=True)


def interrupt(signum, frame) -> None:
    """SIGINT and SIGTERM stop the stack (SIGINT even where a shell started it ignoring it)."""
    raise KeyboardInterrupt


def main() -> int:
    """Run the stack from the environment's settings until interrupted."""
    settings = load_settings()
    if settings.proxy_port == settings.port:
        sys.exit(f"stack: PROXY_PORT and PORT are both {settings.port}; nginx needs its own")
    if address_taken(LOOPBACK, settings.proxy_port):
        sys.exit(f"stack: PROXY_PORT {settings.proxy_port} on {LOOPBACK} is already in use")
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    with_replica = os.environ.get("DB_REPLICA", "").strip() == "1"
    folder = Path(tempfile.mkdtemp(prefix="stack-"))
    folder.chmod(0o755)  # nginx's workers, not root, write their temp files below it
    pair = None
    try:
        print(f"stack: files in {folder}", flush=True)
        if with_replica:
            pair = PostgresPair()  # Assigned first: a start that fails half-way stops too.
            pair.start()
            print(f"stack: primary on port {pair.primary.port}, replica on {pair.replica.port}")
        print(f"stack: http://{LOOPBACK}:{settings.proxy_port}/api/health", flush=True)
        print(f"stack: Prometheus at http://{PROMETHEUS_ADDRESS}/graph", flush=True)
        return run(parts(settings, folder, pair))
    except (RuntimeError, subprocess.CalledProcessError) as error:  # A part that would not start.
        print(f"stack: {error}", file=sys.stderr)
        return 1
    finally:
        if pair is not None:
            pair.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
