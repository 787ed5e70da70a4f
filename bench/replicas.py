"""Read throughput and server connections with 0 and 1 replica, side by side in one run.

    python -m bench.replicas [--seconds 10] [--workers 2] [--connections 16]

One private primary and streaming replica (deploy/private_postgres.py) with the bench's
services; gunicorn serves GET /api/services/<id> (bench/lua/services.lua) first with
DATABASE_URL alone, then with the replica as DATABASE_REPLICA_URLS. Meanwhile each server is
asked, every 0.2 s, how many connections carry that gunicorn's application_name.
"""

import argparse
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import requests

from bench.dataset import SERVICES_SQL
from bench.load import Load, run_wrk
from bench.postgres import admin_execute, migrate
from deploy.ports import free_port
from deploy.private_postgres import PostgresPair

ROOT = Path(__file__).resolve().parent.parent
SERVICES = 1_000
SAMPLE_INTERVAL_S = 0.2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The run's length and size."""
    parser = argparse.ArgumentParser(prog="python -m bench.replicas", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    return parser.parse_args(argv)


class ConnectionSampler(threading.Thread):
    """The most connections named application_name each server held while it ran."""

    def __init__(self, pair: PostgresPair, application_name: str):
        super().__init__(daemon=True)
        self.pair, self.application_name = pair, application_name
        self.peaks = {"primary": 0, "replica": 0}
        self.finished = threading.Event()

    def run(self) -> None:
        """Sample until stopped."""
        servers = {"primary": self.pair.primary, "replica": self.pair.replica}
        while not self.finished.wait(SAMPLE_INTERVAL_S):
            for name, server in servers.items():
                count = len(server.backends(self.application_name))
                self.peaks[name] = max(self.peaks[name], count)


def start_gunicorn(env: dict[str, str], port: int) -> subprocess.Popen:
    """gunicorn with the shipped config, once /api/health answers 200 (replicas serving)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if ready(port, "DATABASE_REPLICA_URLS" in env):
            return process
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("gunicorn did not become ready")


def ready(port: int, with_replica: bool) -> bool:
    """Whether health answers, and with a replica, whether it serves."""
    try:
        body = requests.get(f"http://127.0.0.1:{port}/api/health", timeout=2).json()
    except (requests.RequestException, ValueError):
        return False
    replicas = body["database"].get("replicas", {})
    return body["status"] == "ok" and (not with_replica or replicas["replica1"]["serving"])


def measure(pair: PostgresPair, args: argparse.Namespace, with_replica: bool) -> dict:
    """One gunicorn, one wrk run: throughput, p99 and each server's peak connections."""
    name = f"bench{uuid.uuid4().hex[:8]}"
    env = {
        "DATABASE_URL": pair.primary.url("app"),
        "SECRET_KEY": "bench",
        "WEB_CONCURRENCY": str(args.workers),
        "DB_APPLICATION_NAME": name,
        "METRICS_PORT": str(free_port()),
        "LOG_FORMAT": "text",
    }
    if with_replica:
        env["DATABASE_REPLICA_URLS"] = pair.replica.url("app")
    port = free_port()
    server = start_gunicorn(env, port)
    sampler = ConnectionSampler(pair, name)
    try:
        sampler.start()
        threads = min(args.connections, 4)
        load = Load("services.lua", args.connections, threads, args.seconds, (str(SERVICES),))
        summary = run_wrk(load, f"http://127.0.0.1:{port}")
    finally:
        sampler.finished.set()
        sampler.join()
        server.terminate()
        server.wait(40)
    return {"replicas": int(with_replica), **summary, "peaks": sampler.peaks}


def table(results: list[dict]) -> str:
    """The runs side by side, as a Markdown table."""
    lines = [
        "| replicas | requests/s | p99 ms | non-2xx | peak connections: primary | replica |",
        "|---|---|---|---|---|---|",
    ]
    for result in results:
        lines.append(
            f"| {result['replicas']} | {result['throughput_rps']:.0f} |"
            f" {result['latency_p99_us'] / 1000:.1f} | {result['non_2xx']} |"
            f" {result['peaks']['primary']} | {result['peaks']['replica']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run both configurations on one pair and print the table."""
    args = parse_args(argv)
    with PostgresPair() as pair:
        pair.primary.execute("CREATE DATABASE app")
        migrate(pair.primary.url("app"))
        admin_execute(SERVICES_SQL, {"services": SERVICES}, pair.primary.url("app"))
        pair.wait_until_replayed()
        results = [measure(pair, args, with_replica) for with_replica in (False, True)]
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
