"""Instructions one request costs in process, ours beside the baselines, counted by callgrind.

    python -m bench.instructions [--requests 300] [--subjects floor,pony,plain,ours] [--layers]

Timings on shared cores move by a third from one run to the next; instruction counts do
not. Creates a throwaway database with the bench's smoke data, then, for each subject and
route, runs `valgrind --tool=callgrind` twice on a Python that sends the route's request
through the subject's WSGI callable (no gunicorn, no socket) after a warm-up: once
REQUESTS + BASE times, once BASE times. The difference divided by REQUESTS is one request,
without the start-up both runs share. About a minute for each subject and route.

--layers also counts what lies beneath a request for the two Flask-SQLAlchemy subjects,
plain and ours, each in an app context of its own and without a request: the context alone,
one `SELECT 1` through a pooled connection, and the route's read of the row. Side by side
they show which layer ours spends its extra instructions in.
"""

import argparse
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from importlib import import_module
from pathlib import Path

from bench import dataset
from bench.postgres import migrated_database
from bench.runner import SECRET_KEY

SUBJECTS = {
    "floor": "bench.floor:app",
    "pony": "bench.techempower:app",
    "plain": "bench.plain_flask_sqlalchemy:app",
    "ours": "wsgi:app",
}
ROUTES = ("/api/services/1", "/api/health/live")
REQUESTS, BASE, WARM_UP = 300, 100, 50
TOTAL = re.compile(r"Collected : (\d+)")
ROOT = Path(__file__).resolve().parent.parent


def load_app(app_path: str):
    """The WSGI app app_path names (module:attribute)."""
    module, name = app_path.split(":")
    return getattr(import_module(module), name)


def send_requests(app_path: str, path: str, count: int) -> None:
    """Call app_path's WSGI app WARM_UP + count times for path; stop at an answer not 200."""
    from werkzeug.test import EnvironBuilder

    app = load_app(app_path)
    environ = EnvironBuilder(path=path, headers={"Host": "127.0.0.1"}).get_environ()
    statuses: list[str] = []

    def start_response(status, headers, exc_info=None):
        statuses.append(status)

    for _ in range(WARM_UP + count):
        body = app({**environ, "wsgi.input": io.BytesIO()}, start_response)
        b"".join(body)
        getattr(body, "close", lambda: None)()
        if not statuses.pop().startswith("200"):
            raise SystemExit(f"{app_path} did not answer {path} with 200")


def read_plain():
    """Service 1 as plain Flask-SQLAlchemy's route reads it."""
    from bench.plain_flask_sqlalchemy import Service, db

    return db.get_or_404(Service, 1)


def read_ours():
    """Service 1 as ours' GET /api/services/<id> reads it."""
    from app.api.catalogue import show_or_404
    from app.models import Service

    return show_or_404(Service, 1, "service")


def select_one(app) -> None:
    """`SELECT 1` through the DBAPI on a connection from the app's pool, given back after."""
    connection = app.extensions["sqlalchemy"].engine.raw_connection()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        connection.close()


ROW_READS = {"plain": read_plain, "ours": read_ours}
LAYERS = {
    "an app context, nothing in it": lambda app, key: None,
    "an app context, one pooled `SELECT 1` (DBAPI)": lambda app, key: select_one(app),
    "an app context, the route's read of the row (ORM)": lambda app, key: ROW_READS[key](),
}


def run_layer(key: str, layer: str, count: int) -> None:
    """Do the layer's work WARM_UP + count times, each in an app context of its own."""
    app, work = load_app(SUBJECTS[key]), LAYERS[layer]
    for _ in range(WARM_UP + count):
        with app.app_context():
            work(app, key)


def counted(url: str, key: str, target: str, count: int, work_dir: str) -> int:
    """The instructions a child Python runs for count requests or layers (after a warm-up)."""
    command = [
        *("valgrind", "--tool=callgrind", f"--callgrind-out-file={work_dir}/callgrind.out"),
        *(sys.executable, "-m", "bench.instructions", "--child", key, target, str(count)),
    ]
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DB_APPLICATION_NAME": "bench-instructions",
        "SECRET_KEY": SECRET_KEY,
        "PYTHONHASHSEED": "0",  # The same dict and set layouts in every run.
    }
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    found = TOTAL.search(done.stderr)
    if done.returncode != 0 or not found:
        raise SystemExit(f"bench.instructions: {key} {target} failed:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def per_request(url: str, key: str, target: str, requests: int, work_dir: str) -> int:
    """One request's (or layer's) instructions: two runs' difference over their difference."""
    more = counted(url, key, target, requests + BASE, work_dir)
    fewer = counted(url, key, target, BASE, work_dir)
    return round((more - fewer) / requests)


def table(counts: dict[str, dict[str, int]]) -> str:
    """Markdown: a row per route, a column per subject, in thousands of instructions."""
    lines = [
        "| instructions a request (in process) | " + " | ".join(counts) + " |",
        "|---|" + "---|" * len(counts),
    ]
    for path in ROUTES:
        cells = " | ".join(f"{counts[key][path] / 1000:,.0f}k" for key in counts)
        lines.append(f"| `GET {path}` | {cells} |")
    return "\n".join(lines)


def layer_table(counts: dict[str, dict[str, int]]) -> str:
    """Markdown: a row per layer, plain and ours, and what ours adds."""
    lines = [
        "| instructions beneath a request (in process) | plain | ours | ours − plain |",
        "|---|---|---|---|",
    ]
    for layer in LAYERS:
        plain, ours = counts["plain"][layer], counts["ours"][layer]
        cells = f"{plain / 1000:,.0f}k | {ours / 1000:,.0f}k | {(ours - plain) / 1000:+,.0f}k"
        lines.append(f"| {layer} | {cells} |")
    return "\n".join(lines)


def subject_names(text: str) -> list[str]:
    """--subjects: known subject names, comma-separated."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SUBJECTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(SUBJECTS)}; got {text!r}")
    return names


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    parser.add_argument("--requests", type=int, default=REQUESTS, help="measured (300)")
    parser.add_argument(
        "--subjects",
        type=subject_names,
        default=list(SUBJECTS),
        help="which to count, comma-separated (all: " + ",".join(SUBJECTS) + ")",
    )
    parser.add_argument(
        "--layers",
        action="store_true",
        help="also count the layers beneath a request, for plain and ours",
    )
    # The Python that callgrind counts: python -m bench.instructions --child KEY TARGET COUNT,
    # TARGET a route's path or a layer's name.
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Count every subject and route on a database of its own; print the table."""
    args = parse_args(argv)
    if args.child:
        key, target, count = args.child
        if target in LAYERS:
            run_layer(key, target, int(count))
        else:
            send_requests(SUBJECTS[key], target, int(count))
        return 0
    if shutil.which("valgrind") is None:
        print("bench.instructions needs valgrind: apt-get install -y valgrind", file=sys.stderr)
        return 2
    # SIGTERM unwinds like Ctrl-C, so the database is dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    counts: dict[str, dict[str, int]] = {}
    layers: dict[str, dict[str, int]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="instructions-") as work_dir,
        migrated_database("bench") as url,
    ):
        dataset.load(url, dataset.SMOKE)
        for key in args.subjects:
            counts[key] = {
                path: per_request(url, key, path, args.requests, work_dir) for path in ROUTES
            }
            print(f"bench.instructions: {key} {counts[key]}", file=sys.stderr)
        for key in ROW_READS if args.layers else ():
            layers[key] = {
                layer: per_request(url, key, layer, args.requests, work_dir) for layer in LAYERS
            }
            print(f"bench.instructions: {key} {layers[key]}", file=sys.stderr)
    print(table(counts))
    if layers:
        print("\n" + layer_table(layers))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
