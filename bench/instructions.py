"""Instructions per one-row GET, counted by callgrind: repeatable where timings are not.

    apt-get install -y valgrind
    python -m bench.instructions [--requests 200]

Creates a throwaway database with the bench's services, then serves GET
/api/services/<id> through the app's WSGI callable, in process, in a child run under
`valgrind --tool=callgrind` that counts only inside the request loop. Each request still
makes its real round trip to PostgreSQL; the count is the app's own CPU work (no kernel,
no server), and repeats to within a fraction of a per cent on a noisy machine, so two
commits can be compared one after the other.
"""

import argparse
import functools
import gc
import io
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import dataset
from bench.dataset import DataSize
from bench.postgres import migrated_database

# Callgrind counts only while this C function runs: the request loop is run inside it.
LOOP_FUNCTION = "functools_reduce"
SERVICES = DataSize(services=1_000, users=dataset.SIGNED_IN_USERS, orders=100)
WARM_UP_REQUESTS = 200


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; --child is how the parent starts the counted run."""
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    parser.add_argument("--requests", type=int, default=200, help="requests counted (200)")
    parser.add_argument("--child", metavar="DATABASE_URL", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Count, print the instructions per request; exit 2 when valgrind is missing."""
    args = parse_args(argv)
    if args.child:
        serve_requests(args.child, args.requests)
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: apt-get install -y valgrind", file=sys.stderr)
        return 2
    with migrated_database("bench") as url:
        dataset.load(url, SERVICES)
        total = count_instructions(url, args.requests)
    print(f"GET /api/services/<id>: {total // args.requests:,} instructions per request")
    return 0


def count_instructions(url: str, requests: int) -> int:
    """Run the child under callgrind; return the instructions counted in its loop."""
    with tempfile.TemporaryDirectory(prefix="callgrind-") as work_dir:
        out = Path(work_dir) / "callgrind.out"
        command = [
            "valgrind",
            "--tool=callgrind",
            "--collect-atstart=no",
            f"--toggle-collect={LOOP_FUNCTION}",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-m",
            "bench.instructions",
            "--child",
            url,
            "--requests",
            str(requests),
        ]
        subprocess.run(command, check=True, capture_output=True)
        return sum(summary_total(path) for path in Path(work_dir).glob("callgrind.out*"))


def summary_total(path: Path) -> int:
    """The instruction total a callgrind output file reports."""
    for line in path.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    return 0


def serve_requests(url: str, requests: int) -> None:
    """Warm up, then serve the counted requests inside functools.reduce."""
    os.environ.update(
        DATABASE_URL=url,
        SECRET_KEY="bench-instructions",
        DB_POOL_SIZE="2",
        DB_MAX_OVERFLOW="1",
        DB_POOL_PRE_PING="true",
        DB_APPLICATION_NAME="bench-instructions",
        PROMETHEUS_MULTIPROC_DIR=tempfile.mkdtemp(prefix="prometheus-"),
    )
    from werkzeug.test import EnvironBuilder

    from app import create_app

    app = create_app()
    random.seed(1)
    paths = [f"/api/services/{random.randint(1, SERVICES.services)}" for _ in range(200)]
    environs = [EnvironBuilder(path=path).get_environ() for path in paths]

    statuses = []

    def serve(_, index: int) -> None:
        environ = {**environs[index % len(environs)], "wsgi.input": io.BytesIO(b"")}
        body = app(environ, lambda status, headers, exc_info=None: statuses.append(status))
        b"".join(body)
        body.close()

    for index in range(WARM_UP_REQUESTS):  # A plain loop: outside LOOP_FUNCTION, not counted.
        serve(None, index)
    # Long-lived objects out of the collector's way, so a full collection that happens
    # to fall in the loop does not swing the count.
    gc.collect()
    gc.freeze()
    functools.reduce(serve, range(requests), None)
    if failed := [status for status in statuses if not status.startswith("200")]:
        raise SystemExit(f"{len(failed)} requests were not answered 200, e.g. {failed[0]}")


if __name__ == "__main__":
    raise SystemExit(main())
