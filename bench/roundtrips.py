"""Round trips to PostgreSQL per route of ours, counted on the wire by bench/netproxy.py.

    python -m bench.roundtrips [--requests 5]

Creates a throwaway database with the bench's smoke data, starts the proxy and our app
under gunicorn (one sync worker, the bench's pool settings) with DATABASE_URL through the
proxy, and sends each route's request one at a time: the proxy's total of queries and
Syncs before, the request, the total again once no round trip is in flight. Each route is
warmed up first, so its pools are open; any connection a measured request still opens is
shown apart. Prints route → round trips (median of the requests) and stops everything.
"""

import argparse
import http.client
import json
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from urllib.parse import urlsplit

from app.database.health import MAX_AGE_S as PROBE_MAX_AGE_S
from bench import dataset
from bench.dataset import BENCH_PASSWORD, BENEFIT_CODE
from bench.netproxy import NetProxy, Totals
from bench.plan import make_plan
from bench.postgres import migrated_database

WARM_UP_REQUESTS = 2
REQUESTS = 5
SETTLE_POLL_S = 0.02
SETTLE_TIMEOUT_S = 5
SIGNED_IN_EMAIL = dataset.signed_in_emails()[0]


class UnexpectedStatus(RuntimeError):
    """A route answered other than it should: its count would not be the route's."""


@dataclass
class Session:
    """One signed-in client of ours and what its requests left to use: an order, its ETag."""

    base_url: str
    token: str = ""
    order_id: int = 0
    etag: str = ""
    keys_sent: int = 0
    run_id: str = field(default_factory=lambda: str(time.time_ns()))

    def send(self, method: str, path: str, expect: int, body=None, headers=None):
        """One request on a fresh HTTP connection; return its headers and JSON body."""
        address = urlsplit(self.base_url)
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
        headers = {**(headers or {}), "Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            connection.request(method, path, json.dumps(body) if body else None, headers)
            response = connection.getresponse()
            payload = response.read()
        finally:
            connection.close()
        if response.status != expect:
            raise UnexpectedStatus(f"{method} {path}: {response.status}, not {expect}: {payload}")
        return response.headers, json.loads(payload) if payload else None

    def idempotency_key(self) -> str:
        """A key no earlier request of any run used."""
        self.keys_sent += 1
        return f"roundtrips-{self.run_id}-{self.keys_sent}"


def log_in(session: Session) -> None:
    """POST /api/auth/login as a bench user; the session keeps the token."""
    session.token = ""
    body = {"email": SIGNED_IN_EMAIL, "password": BENCH_PASSWORD}
    _, answer = session.send("POST", "/api/auth/login", 200, body)
    session.token = answer["token"]


def get_service(session: Session) -> None:
    """GET one service."""
    session.send("GET", "/api/services/1", 200)


def list_services(session: Session) -> None:
    """GET the first page of services."""
    session.send("GET", "/api/services", 200)


def list_orders(session: Session) -> None:
    """GET the signed-in user's first page of orders."""
    session.send("GET", "/api/orders", 200)


def place_order(session: Session, benefit_code: str | None = None, keyed: bool = True) -> None:
    """POST an order, with a fresh Idempotency-Key unless not keyed; kept for the PATCH."""
    body = {"service_id": 1, "quantity": 1}
    if benefit_code:
        body["benefit_code"] = benefit_code
    headers = {"Idempotency-Key": session.idempotency_key()} if keyed else {}
    response_headers, order = session.send("POST", "/api/orders", 201, body, headers)
    session.order_id, session.etag = order["id"], response_headers["ETag"]


def patch_order(session: Session) -> None:
    """PATCH the session's last order's quantity with If-Match of the version it read."""
    path = f"/api/orders/{session.order_id}"
    # Each version gets another quantity than the last: every PATCH really writes.
    body = {"quantity": 2 + int(session.etag.strip('"')) % 5}
    headers, _ = session.send("PATCH", path, 200, body, {"If-Match": session.etag})
    session.etag = headers["ETag"]


def health(session: Session) -> None:
    """GET /api/health: readiness, answered from the probe's last check while it is fresh."""
    session.send("GET", "/api/health", 200)


def health_checked(session: Session) -> None:
    """GET /api/health once its probe's last check is too old: the probe asks the server."""
    time.sleep(PROBE_MAX_AGE_S)
    session.send("GET", "/api/health", 200)


def live(session: Session) -> None:
    """GET /api/health/live, which never touches the database: must count 0."""
    session.send("GET", "/api/health/live", 200)


# What the table shows, in its order: a label and one request of the route.
ROUTES: dict[str, Callable[[Session], None]] = {
    "GET /api/services/<id>": get_service,
    "GET /api/services (list)": list_services,
    "GET /api/orders (signed in)": list_orders,
    "POST /api/orders": lambda session: place_order(session, keyed=False),
    "POST /api/orders (Idempotency-Key)": place_order,
    "POST /api/orders with a benefit code (Idempotency-Key)": (
        lambda session: place_order(session, BENEFIT_CODE)
    ),
    "PATCH /api/orders/<id> (If-Match)": patch_order,
    "POST /api/auth/login": log_in,
    "GET /api/health (probe's check still fresh)": health,
    "GET /api/health (probe checks: a connection of its own)": health_checked,
    "GET /api/health/live": live,
}


def settled_totals(proxy: NetProxy, since: int) -> Totals:
    """The proxy's totals once nothing is in flight and two asks in a row agree."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    last = proxy.totals(since)
    while time.monotonic() < deadline:
        time.sleep(SETTLE_POLL_S)
        now = proxy.totals(since)
        if now.lost:
            raise RuntimeError("the proxy could not parse a connection's messages")
        if now == last and not now.in_flight:
            return now
        last = now
    raise RuntimeError("the proxy's round trips did not settle: a request still running?")


def measure(proxy: NetProxy, session: Session, route: Callable[[Session], None]) -> dict:
    """One request of route: its round trips, and the connections it opened."""
    before = settled_totals(proxy, 0)
    route(session)
    after = settled_totals(proxy, before.connections)
    return {
        "round_trips": after.round_trips - before.round_trips,
        "new_connections": after.connections - before.connections,
        "round_trips_on_new": after.round_trips_on_new,
    }


def count_route(proxy: NetProxy, session: Session, route, requests: int) -> dict:
    """Warm a route up, then measure it requests times; the median and every reading."""
    for _ in range(WARM_UP_REQUESTS):
        route(session)
    readings = [measure(proxy, session, route) for _ in range(requests)]
    return {
        "round_trips": median(reading["round_trips"] for reading in readings),
        "per_request": [reading["round_trips"] for reading in readings],
        "new_connections": median(reading["new_connections"] for reading in readings),
        "round_trips_on_new": median(reading["round_trips_on_new"] for reading in readings),
    }


def count_routes(base_url: str, proxy: NetProxy, requests: int = REQUESTS) -> dict[str, dict]:
    """Round trips of each route of ours at base_url, whose database is reached via proxy.

    The database must hold bench/dataset.py's rows (a signed-in user, service 1, the
    benefit code). Every request must be answered as the route should (UnexpectedStatus).
    """
    session = Session(base_url)
    log_in(session)
    place_order(session)  # So the PATCH has an order before its own warm-up.
    return {label: count_route(proxy, session, route, requests) for label, route in ROUTES.items()}


def table(counts: dict[str, dict]) -> str:
    """Route → round trips as a plain-text table; medians per request, new connections apart."""
    width = max(map(len, counts))
    lines = [f"{'route':<{width}}  round trips  (each request)  new connections (their trips)"]
    for label, count in counts.items():
        each = ", ".join(map(str, count["per_request"]))
        new = f"{count['new_connections']:g} ({count['round_trips_on_new']:g})"
        lines.append(f"{label:<{width}}  {count['round_trips']:>11g}  ({each})  {new}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.roundtrips", description=__doc__)
    parser.add_argument("--requests", type=int, default=REQUESTS, help="measured per route (5)")
    parser.add_argument("--json", action="store_true", help="print the counts as JSON too")
    return parser.parse_args(argv)


def serving_ours(database_url: str, log_dir: Path):
    """Our app under gunicorn, one sync worker, the bench's settings, on database_url."""
    from bench.runner import environment, serving
    from bench.servers import ServerSpec

    plan = make_plan(smoke=True, runs=1, out_dir=log_dir, workers=1)
    spec = ServerSpec("app", None, environment(plan, database_url, "bench-roundtrips", False))
    return serving(spec, log_dir)


def main(argv: list[str] | None = None) -> int:
    """Count on a database, proxy and gunicorn of its own; print the table."""
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so gunicorn and the proxy stop and the database is dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with (
        tempfile.TemporaryDirectory(prefix="roundtrips-") as work_dir,
        migrated_database("bench") as url,
    ):
        dataset.load(url, dataset.SMOKE)
        with NetProxy() as proxy, serving_ours(proxy.url(url), Path(work_dir)) as server:
            try:
                counts = count_routes(server.base_url, proxy, args.requests)
            except UnexpectedStatus as error:
                print(f"bench.roundtrips: {error}", file=sys.stderr)
                return 1
    print(table(counts))
    if args.json:
        print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
