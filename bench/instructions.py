"""Instructions per one-row GET, counted by callgrind: repeatable where timings are not.

    apt-get install -y valgrind
    python -m bench.instructions [--requests 200]

Creates a throwaway database with the bench's services, then serves GET
/api/services/<id> through the app's WSGI callable, in process, in a child run under
`valgrind --tool=callgrind` that counts only inside the request loop. Each request still
makes its real round trip to PostgreSQL; the count is the app's own CPU work (no kernel,
no server), and repeats to within a fraction of a per cent on a noisy machine, so two
commits can be compared one after the other.

Beside the app, in the same run and the same way: TechEmpower's Flask entry
(bench/techempower.py), a bare Flask route answering the same row from memory (what Flask
alone costs), and the app's one-row read alone, through Core as the app reads and through
the pooled DBAPI connection (Engine.raw_connection), which skips Core's execution context;
and the app again with its read on that DBAPI connection, what Core costs the whole request.
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
    parser.add_argument("--subject", choices=SUBJECTS, default="app", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Count, print the instructions per request; exit 2 when valgrind is missing."""
    args = parse_args(argv)
    if args.child:
        # Before any subject imports the app: prometheus_client picks its multiprocess
        # values, as under gunicorn, only when PROMETHEUS_MULTIPROC_DIR is set at import.
        child_environment(args.child)
        SUBJECTS[args.subject][1](args.requests)
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: apt-get install -y valgrind", file=sys.stderr)
        return 2
    with migrated_database("bench") as url:
        dataset.load(url, SERVICES)
        counts = {
            subject: count_instructions(url, args.requests, subject) // args.requests
            for subject in SUBJECTS
        }
    print(f"GET /api/services/<id>: {counts['app']:,} instructions per request")
    print(f"\nInstructions per request or read, {args.requests} of each, counted in one run:")
    for subject, (label, _serve) in SUBJECTS.items():
        print(f"  {counts[subject]:>10,}  {label}")
    return 0


def count_instructions(url: str, requests: int, subject: str) -> int:
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
            "--subject",
            subject,
        ]
        subprocess.run(command, check=True, capture_output=True)
        return sum(summary_total(path) for path in Path(work_dir).glob("callgrind.out*"))


def summary_total(path: Path) -> int:
    """The instruction total a callgrind output file reports."""
    for line in path.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    return 0


def child_environment(url: str) -> None:
    """The app's settings in the counted child: the bench's pool, pre-ping and metrics on."""
    os.environ.update(
        DATABASE_URL=url,
        SECRET_KEY="bench-instructions",
        DB_POOL_SIZE="2",
        DB_MAX_OVERFLOW="1",
        DB_POOL_PRE_PING="true",
        DB_APPLICATION_NAME="bench-instructions",
        PROMETHEUS_MULTIPROC_DIR=tempfile.mkdtemp(prefix="prometheus-"),
    )


def serve_requests(requests: int) -> None:
    """The app: GET /api/services/<id> through its WSGI callable."""
    from app import create_app

    serve_wsgi(create_app(), requests)


def serve_pony(requests: int) -> None:
    """TechEmpower's Flask entry, the bench's peer, serving the same request."""
    from bench import techempower

    serve_wsgi(techempower.app, requests)


def serve_bare_flask(requests: int) -> None:
    """A bare Flask route answering one service row from memory: what Flask alone costs."""
    from flask import Flask

    from bench.floor import service_row

    row = service_row(1)
    flask_app = Flask(__name__)
    flask_app.add_url_rule("/api/services/<int:service_id>", view_func=lambda service_id: row)
    serve_wsgi(flask_app, requests)


def serve_wsgi(wsgi_app, requests: int) -> None:
    """Warm up, then serve the counted requests inside functools.reduce; all must be 200."""
    from werkzeug.test import EnvironBuilder

    paths = [f"/api/services/{service_id}" for service_id in service_ids()]
    environs = [EnvironBuilder(path=path).get_environ() for path in paths]
    statuses = []

    def serve(_, index: int) -> None:
        environ = {**environs[index % len(environs)], "wsgi.input": io.BytesIO(b"")}
        body = wsgi_app(environ, lambda status, headers, exc_info=None: statuses.append(status))
        b"".join(body)
        body.close()

    count_loop(serve, requests)
    if failed := [status for status in statuses if not status.startswith("200")]:
        raise SystemExit(f"{len(failed)} requests were not answered 200, e.g. {failed[0]}")


def service_ids() -> list[int]:
    """The ids every subject asks for, the same in each run."""
    random.seed(1)
    return [random.randint(1, SERVICES.services) for _ in range(200)]


def app_context():
    """The app's context, on the child's settings: where the reads alone run."""
    from app import create_app

    return create_app().app_context()


def read_core(requests: int) -> None:
    """The app's own one-row read (read_or_404: a Core connection, a compiled SELECT)."""
    from app.api.catalogue import read_or_404
    from app.models import Service

    ids = service_ids()
    with app_context():
        count_loop(lambda _, index: read_or_404(Service, ids[index % len(ids)], "s"), requests)


def read_dbapi(requests: int) -> None:
    """The same read on the pooled DBAPI connection: no Core execution context, no events."""
    from app.extensions import db
    from app.models import Service

    ids = service_ids()
    with app_context():
        read = dbapi_reader(db.engine, Service)
        count_loop(lambda _, index: read(ids[index % len(ids)]), requests)


def serve_requests_reading_dbapi(requests: int) -> None:
    """Ours, with the GET's read on the pooled DBAPI connection in place of Core's.

    What 46fba5c did, here without the error handling it re-implemented on the pool's
    private attributes: the whole request's price of reading through documented Core.
    """
    from unittest import mock

    from app import create_app
    from app.api import services
    from app.errors import ApiError
    from app.extensions import db
    from app.models import Service

    app = create_app()
    with app.app_context():
        read = dbapi_reader(db.engine, Service)

    def read_or_404(_model: type, row_id: int, resource: str) -> dict:
        row = read(row_id)
        if row is None:
            raise ApiError.not_found(resource)
        return row

    with mock.patch.object(services, "read_or_404", read_or_404):
        serve_wsgi(app, requests)


def dbapi_reader(engine, model: type):
    """A read of model's row by id on engine's pooled DBAPI connection: a dict, or None."""
    from app.api.catalogue import row_by_id

    sql = str(row_by_id(model.__table__).compile(dialect=engine.dialect))

    def read(row_id: int) -> dict | None:
        connection = engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute(sql, {"row_id": row_id})
            values = cursor.fetchone()
            names = [column.name for column in cursor.description]
        finally:
            connection.close()
        return None if values is None else dict(zip(names, values, strict=True))

    return read


def count_loop(step, requests: int) -> None:
    """Warm up with step, then run it requests times inside functools.reduce (counted)."""
    for index in range(WARM_UP_REQUESTS):  # A plain loop: outside LOOP_FUNCTION, not counted.
        step(None, index)
    # Long-lived objects out of the collector's way, so a full collection that happens
    # to fall in the loop does not swing the count.
    gc.collect()
    gc.freeze()
    functools.reduce(step, range(requests), None)


# What one run counts, by --subject: a label for the table and the child that serves it.
SUBJECTS = {
    "app": ("ours: GET /api/services/<id> (pre-ping, metrics, request ids on)", serve_requests),
    "app-dbapi": (
        "ours, the read on the pooled DBAPI connection instead of Core",
        serve_requests_reading_dbapi,
    ),
    "pony": ("TechEmpower's Flask entry (Pony ORM), the same request", serve_pony),
    "flask": ("a bare Flask route answering the row from memory", serve_bare_flask),
    "core": ("the read alone: Core, as the app reads (read_or_404)", read_core),
    "dbapi": ("the read alone: the pooled DBAPI connection (raw_connection)", read_dbapi),
}


if __name__ == "__main__":
    raise SystemExit(main())
