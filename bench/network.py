"""A database one hop away (issue 16): S1's read by every subject, on loopback and via a proxy.

The floor, TechEmpower's Flask entry (Pony), plain Flask-SQLAlchemy (also with its reads in
autocommit: ours' one round trip) and ours each run twice in one run: on DATABASE_URL as it
is (loopback) and through bench/netproxy.py, which holds each chunk for the plan's delay
each way. All ten servers are up together and loaded in
alternating slices (bench/runner.py's run_side_by_side), so both cases come from one
command and the machine's drifts hit all alike. The proxy's real added round trip (`SELECT
1` through it and direct) and its chunks' real hold times under the load are kept beside
the figures, so the report quotes what was added, not what was asked for.
"""

import time
from contextlib import ExitStack
from dataclasses import replace

from bench.load import Load, run_wrk
from bench.netproxy import NetProxy, measure_added_rtt
from bench.plan import Plan
from bench.roundtrips import count_routes, serving_ours, settled_totals
from bench.runner import (
    ACCESS_LINE,
    Target,
    application_name,
    environment,
    run_side_by_side,
    serving,
)
from bench.servers import Server, ServerSpec

# Result key -> the server's variant (None: ours); the report's and ratios' order.
SUBJECTS = {
    "floor": "floor",
    "pony": "pony",
    "plain": "plain",
    "plain-autocommit": "plain-autocommit",
    "S1": None,
}
PATHS = ("loopback", "proxied")
# gunicorn's access lines reach the bench through a pipe and a thread: let them all arrive.
LOG_SETTLE_S = 0.1


def subject_spec(plan: Plan, key: str, url: str, name: str) -> ServerSpec:
    """One subject on url: the side-by-side servers' settings, with the network's workers."""
    as_shipped = replace(plan, workers=plan.network_workers)
    return ServerSpec(key, SUBJECTS[key], environment(as_shipped, url, name, False))


def run_network(plan: Plan, target: Target, run_index: int) -> dict:
    """Every subject on loopback and through the proxy, side by side; with the proxy's cost."""
    with NetProxy(delay_ms=plan.network_delay_ms) as proxy, ExitStack() as stack:
        added = measure_added_rtt(proxy, target.url)
        urls = {"loopback": target.url, "proxied": proxy.url(target.url)}
        servers = {}
        for path in PATHS:
            for key in SUBJECTS:
                name = application_name(plan, f"net-{path}-{key}", run_index)
                spec = subject_spec(plan, key, urls[path], name)
                servers[f"{path}/{key}"] = stack.enter_context(serving(spec, plan.logs_dir))
        proxy.holds()  # Forget the servers' start-up: only the load's holds are reported.
        cpu_s, started = proxy.cpu_s(), time.monotonic()
        measured = run_side_by_side(plan, servers, target)
        holds = proxy.holds()
        holds["cpu_share"] = (proxy.cpu_s() - cpu_s) / (time.monotonic() - started)
        for key in SUBJECTS:
            measured[f"proxied/{key}"]["round_trips_per_request"] = round_trips_under_load(
                plan, proxy, servers[f"proxied/{key}"], target
            )
    results = {path: {key: measured[f"{path}/{key}"] for key in SUBJECTS} for path in PATHS}
    return {**results, "added_rtt": added, "holds": holds, "ratios": network_ratios(results)}


def round_trips_under_load(plan: Plan, proxy: NetProxy, server: Server, target: Target) -> float:
    """The proxy's round trips per request served while wrk loads this one server for a second.

    The other servers are idle meanwhile, so the proxy's count is this one's; the requests
    are those gunicorn logged, so the ones wrk cut off at its end count too.
    """
    args = (str(target.max_service_id),)
    trips, served = proxy.totals().round_trips, served_requests(server)
    run_wrk(Load("services.lua", plan.connections, plan.wrk_threads, 1, args), server.base_url)
    trips = settled_totals(proxy, 0).round_trips - trips
    return trips / (settled_served_requests(server) - served)


def served_requests(server: Server) -> int:
    """The requests gunicorn has logged so far."""
    return sum(1 for line in server.log_lines if ACCESS_LINE.search(line))


def settled_served_requests(server: Server) -> int:
    """The requests logged, once two counts LOG_SETTLE_S apart agree."""
    last = served_requests(server)
    while True:
        time.sleep(LOG_SETTLE_S)
        now = served_requests(server)
        if now == last:
            return now
        last = now


def network_ratios(results: dict) -> dict:
    """Each subject against the floor and against Pony, within one path of one run."""
    ratios = {}
    for path in PATHS:
        rps = {key: results[path][key]["throughput_rps"] for key in SUBJECTS}
        ratios[path] = {
            **{f"{key}_floor": rps[key] / rps["floor"] for key in SUBJECTS},
            **{f"{key}_pony": rps[key] / rps["pony"] for key in SUBJECTS},
        }
    return ratios


def count_round_trips(plan: Plan, url: str) -> dict:
    """Round trips per route of ours on the bench's database, counted through the proxy."""
    with (
        NetProxy(delay_ms=plan.network_delay_ms) as proxy,
        serving_ours(proxy.url(url), plan.logs_dir) as server,
    ):
        return count_routes(server.base_url, proxy)
