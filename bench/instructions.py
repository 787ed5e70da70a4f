"""Instructions one request costs in process, ours beside the baselines, counted by callgrind.

    python -m bench.instructions [--requests 300] [--subjects floor,pony,plain,ours]

Timings on shared cores move by a third from one run to the next; instruction counts do
not. Creates a throwaway database with the bench's smoke data, then, for each subject and
route, runs `valgrind --tool=callgrind` twice on a Python that sends the route's request
through the subject's WSGI callable (no gunicorn, no socket) after a warm-up: once
REQUESTS + BASE times, once BASE times. The difference divided by REQUESTS is one request,
without the start-up both runs share. About a minute for each subject and route.
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


def send_requests(app_path: str, path: str, count: int) -> None:
    """Call app_path's WSGI app WARM_UP + count times for path; stop at an answer not 200."""
    from werkzeug.test import EnvironBuilder

    module, name = app_path.split(":")
    app = getattr(import_module(module), name)
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


def counted(url: str, app_path: str, path: str, count: int, work_dir: str) -> int:
    """The instructions a child Python runs to send count requests (and warm up first)."""
    command = [
        *("valgrind", "--tool=callgrind", f"--callgrind-out-file={work_dir}/callgrind.out"),
        *(sys.executable, "-m", "bench.instructions", "--child", app_path, path, str(count)),
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
        raise SystemExit(f"bench.instructions: {app_path} {path} failed:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def per_request(url: str, app_path: str, path: str, requests: int, work_dir: str) -> int:
    """One request's instructions: the difference of two runs, divided by their difference."""
    more = counted(url, app_path, path, requests + BASE, work_dir)
    fewer = counted(url, app_path, path, BASE, work_dir)
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
    # The Python that callgrind counts: python -m bench.instructions --child APP PATH COUNT.
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Count every subject and route on a database of its own; print the table."""
    args = parse_args(argv)
    if args.child:
        app_path, path, count = args.child
        send_requests(app_path, path, int(count))
        return 0
    if shutil.which("valgrind") is None:
        print("bench.instructions needs valgrind: apt-get install -y valgrind", file=sys.stderr)
        return 2
    # SIGTERM unwinds like Ctrl-C, so the database is dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    counts: dict[str, dict[str, int]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="instructions-") as work_dir,
        migrated_database("bench") as url,
    ):
        dataset.load(url, dataset.SMOKE)
        for key in args.subjects:
            counts[key] = {
                path: per_request(url, SUBJECTS[key], path, args.requests, work_dir)
                for path in ROUTES
            }
            print(f"bench.instructions: {key} {counts[key]}", file=sys.stderr)
    print(table(counts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
