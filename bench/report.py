"""The Markdown report and PNG charts, every number taken from the runs just made."""

import json
import os
import platform
import subprocess
from pathlib import Path

from bench.plan import THROUGHPUT_KEYS, Plan
from bench.stats import median

SCENARIO_NAMES = {
    "floor": "floor: bare WSGI + one psycopg2 connection per worker",
    "pony": "TechEmpower's Flask entry: Pony ORM `Service[id]`, orjson",
    "S1": "S1 GET /api/services/<id>",
    "S2": "S2 GET /api/orders (signed in, page of 20)",
    "S3": "S3 POST /api/orders with Idempotency-Key",
    "S4": "S4 mix: 80% reads, 20% writes",
}
NETWORK_NAMES = {
    "floor": "floor",
    "pony": "TechEmpower's Flask entry (Pony)",
    "plain": "plain Flask-SQLAlchemy",
    "plain-autocommit": "plain Flask-SQLAlchemy, reads in autocommit",
    "S1": "ours (S1)",
}


def aggregate(runs: list[dict], key: str, field: str) -> float | None:
    """The median over runs of one scenario's field."""
    return median([run[key][field] for run in runs if key in run])


def fmt(value, digits: int = 1) -> str:
    """A number for a table cell; a dash when it was not measured."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}"


def throughput_rows(runs: list[dict]) -> list[str]:
    """One table row per throughput scenario that ran."""
    rows = []
    floor = aggregate(runs, "floor", "throughput_rps")
    for key in THROUGHPUT_KEYS:
        if not any(key in run for run in runs):
            continue
        rps = aggregate(runs, key, "throughput_rps")
        ratio = median(
            [run[key]["throughput_rps"] / run["floor"]["throughput_rps"] for run in runs]
        )
        cells = [
            SCENARIO_NAMES[key],
            fmt(rps, 0),
            f"{ratio:.2f}×" if key != "floor" and floor else "1.00×",
            fmt(aggregate(runs, key, "p50_ms"), 2),
            fmt(aggregate(runs, key, "p99_ms"), 2),
            fmt(max(run[key]["peak_connections"] for run in runs if key in run)),
            fmt(aggregate(runs, key, "peak_worker_rss_mib")),
            fmt(sum(run[key]["non_2xx"] + run[key]["socket_errors"] for run in runs if key in run)),
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def overload_rows(runs: list[dict], plan: Plan) -> list[str]:
    """S5 ours against S5 before, row by row."""

    def both(label: str, render) -> str:
        return f"| {label} | {render('S5')} | {render('before')} |"

    def total(key: str, field: str) -> int:
        return sum(run[key][field] for run in runs)

    def middle(key: str, field: str, digits: int = 0) -> str:
        return fmt(aggregate(runs, key, field), digits)

    return [
        "| | ours (bounded pool) | before (limits removed) |",
        "|---|---|---|",
        both("pool per worker", lambda key: pool_text(plan, key)),
        both("peak server connections (max over runs)", lambda key: peak_text(runs, plan, key)),
        both("another client's connects refused (all runs)", lambda key: neighbour_text(runs, key)),
        both("server refusals in the app's log (all runs)", lambda key: refusals_text(runs, key)),
        both("responses by status (all runs)", lambda key: statuses_text(runs, key)),
        both("error codes (all runs)", lambda key: codes_text(runs, key)),
        both(
            "share of errors: all / answered before the stall (median)",
            lambda key: (
                f"{aggregate(runs, key, 'error_share'):.1%}"
                f" / {aggregate(runs, key, 'error_share_answered_before_stall'):.1%}"
            ),
        ),
        both("sent during the stall: statuses (all runs)", lambda key: stall_statuses(runs, key)),
        both("sent during the stall: p50 / p99 ms (median)", lambda key: stall_latency(runs, key)),
        both(
            "503 p50 / p99 ms (median)",
            lambda key: f"{middle(key, 'p50_503_ms')} / {middle(key, 'p99_503_ms')}",
        ),
        both("500s (all runs)", lambda key: fmt(total(key, "count_500"))),
        both(
            "timeouts, socket errors (all runs)",
            lambda key: f"{fmt(total(key, 'timeouts'))}, {fmt(total(key, 'socket_errors'))}",
        ),
        both("served back to half its own steady rate within 1 s", lambda key: recovery(runs, key)),
    ]


def hosts_rows(runs: list[dict]) -> list[str]:
    """One row per host count: throughput, latency, clients and server connections."""
    rows = [
        "| app hosts | req/s | p50 ms | p99 ms | peak clients at PgBouncer (bound)"
        " | peak server connections (pool) | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for count in runs[0].get("hosts", {}):
        steps = [run["hosts"][count] for run in runs]
        cells = [
            count,
            fmt(median([step["throughput_rps"] for step in steps]), 0),
            fmt(median([step["p50_ms"] for step in steps]), 2),
            fmt(median([step["p99_ms"] for step in steps]), 2),
            f"{max(step['peak_clients'] for step in steps)} ({steps[0]['client_bound']})",
            f"{max(step['peak_server_connections'] for step in steps)} ({steps[0]['server_pool']})",
            fmt(sum(step["non_2xx"] + step["socket_errors"] for step in steps)),
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def peak_text(runs: list[dict], plan: Plan, key: str) -> str:
    """The peak of one side against its bound (ours) and the ceiling (both)."""
    peak = max(run[key]["peak_connections"] for run in runs)
    bound = f"bound {plan.overload_bound}, " if key == "S5" else ""
    return f"{fmt(peak)} ({bound}ceiling {plan.overload_ceiling})"


def neighbour_text(runs: list[dict], key: str) -> str:
    """How many of the neighbour's connection attempts the server refused."""
    refused = sum(run[key]["neighbour"]["refused"] for run in runs)
    attempts = sum(run[key]["neighbour"]["attempts"] for run in runs)
    return f"{refused:,} of {attempts:,}"


def refusals_text(runs: list[dict], key: str) -> str:
    """The server's FATAL errors the app logged, by text."""
    totals = add_up(run[key]["server_errors"] for run in runs)
    return "; ".join(f"{count:,} × `{text}`" for text, count in totals.items()) or "none"


def statuses_text(runs: list[dict], key: str) -> str:
    """Responses as 200 / 503 / 500 / other, always naming the 500s."""
    totals = add_up(run[key]["statuses"] for run in runs)
    other = sum(count for status, count in totals.items() if status not in {"200", "503", "500"})
    named = [f"{status}: {totals.get(status, 0):,}" for status in ("200", "503", "500")]
    return ", ".join([*named, f"other: {other:,}"])


def codes_text(runs: list[dict], key: str) -> str:
    """The error codes of the failed responses."""
    totals = add_up(run[key]["error_codes"] for run in runs)
    return ", ".join(f"`{code}` {count:,}" for code, count in totals.items()) or "none"


def stall_statuses(runs: list[dict], key: str) -> str:
    """How the requests sent during the stall were answered."""
    totals = add_up(run[key]["sent_in_stall"]["statuses"] for run in runs)
    return ", ".join(f"{status}: {count:,}" for status, count in sorted(totals.items())) or "–"


def stall_latency(runs: list[dict], key: str) -> str:
    """p50 / p99 of the requests sent during the stall, each the median over runs."""
    return " / ".join(
        fmt(median([run[key]["sent_in_stall"][field] for run in runs]), 0)
        for field in ("p50_ms", "p99_ms")
    )


def recovery(runs: list[dict], key: str) -> str:
    """Whether every run served again within 1 s of the stall ending, and how soon."""
    values = [run[key]["recovery_s"] for run in runs]
    seconds = ", ".join("never" if value is None else f"{value:.1f} s" for value in values)
    met = all(run[key]["recovered_within_1s"] for run in runs)
    return f"{'yes' if met else 'no'} ({seconds})"


def add_up(counters) -> dict[str, int]:
    """Counts of the same keys summed over runs."""
    totals: dict[str, int] = {}
    for counter in counters:
        for name, count in counter.items():
            totals[name] = totals.get(name, 0) + count
    return totals


def pool_text(plan: Plan, key: str) -> str:
    """How the pool of one side of S5 is configured."""
    if key == "before":
        return f"size {plan.overload_pool_size}, overflow 1000 (unbounded), no budget guard"
    return (
        f"size {plan.overload_pool_size}, overflow {plan.overload_max_overflow},"
        f" timeout {plan.overload_pool_timeout_s:g} s"
    )


def git_commit() -> str:
    """The commit the bench ran on, marked when the tree had changes."""

    def git(*args):
        return subprocess.run(["git", *args], capture_output=True, text=True).stdout.strip()

    dirty = "+changes" if git("status", "--porcelain", "--untracked-files=no") else ""
    return git("rev-parse", "--short", "HEAD") + dirty


def setup_lines(plan: Plan, counts: dict, server_version: str) -> list[str]:
    """What was measured, on what, with which settings."""
    if plan.network_only:
        return [*common_setup_lines(plan, counts, server_version), network_setup_line(plan)]
    return [
        *common_setup_lines(plan, counts, server_version),
        *full_setup_lines(plan),
        *([] if plan.smoke else [network_setup_line(plan)]),  # The smoke run leaves it out.
    ]


def common_setup_lines(plan: Plan, counts: dict, server_version: str) -> list[str]:
    """The run, the machine, the data and the throughput servers' settings."""
    d = plan.durations
    return [
        f"- {len_runs(plan)}, commit `{git_commit()}`, Python {platform.python_version()},"
        f" {server_version}, {cpu_count()} cores, wrk over loopback.",
        "- Data: "
        + ", ".join(
            f"{count:,} {table}" for table, count in counts.items() if not table.startswith("max_")
        )
        + ".",
        f"- S1–S4, the floor and Pony: {plan.workers} sync workers (GUNICORN_THREADS=1),"
        f" DB_POOL_SIZE={plan.pool_size}, DB_MAX_OVERFLOW={plan.max_overflow},"
        f" DB_POOL_PRE_PING={str(plan.pre_ping).lower()}; wrk {plan.connections} connections,"
        f" {d.throughput_s} s each after a {d.warmup_s} s warm-up.",
    ]


def full_setup_lines(plan: Plan) -> list[str]:
    """The settings of the scenarios only the full run has."""
    d = plan.durations
    return [
        "- TechEmpower's Flask entry (bench/techempower.py): Pony ORM's `Service[id]` inside"
        " `db_session`, orjson, as its `/db` route reads a World; same table, rows and gunicorn"
        " settings as S1, one connection per worker, no pre-ping, metrics or rate limits.",
        f"- The floor, Pony and S1 run side by side: all three servers up, wrk alternating"
        f" between them in {plan.slices} slices of {plan.slice_duration_s:g} s each (each round"
        " in the reverse order of the last), so the machine's drifts hit all alike. Their"
        " req/s is over all slices; their p50/p99 are the medians of the slices' own.",
        f"- S5: {plan.overload_workers} workers × {plan.overload_connections} threads,"
        f" {plan.overload_connections} clients (10× the pool capacity);"
        f" `LOCK TABLE services IN ACCESS EXCLUSIVE MODE` held {d.stall_s} s after"
        f" {d.before_stall_s} s of steady load, then {d.after_stall_s} s more.",
        f"- S5's connection ceiling: both sides connect as a throwaway role with"
        f" `CONNECTION LIMIT {plan.overload_ceiling}`, a small server's `max_connections` in"
        f" miniature; ours runs with DB_CONNECTION_BUDGET={plan.overload_ceiling}. Another"
        " client of the same role tries to connect every 100 ms throughout.",
        "- Server connections: `pg_stat_activity` rows with the run's `application_name`,"
        " sampled every 100 ms. RSS: the largest worker's resident memory.",
        f"- Many hosts: {', '.join(map(str, plan.host_counts))} app hosts behind one PgBouncer"
        f" (transaction mode, default_pool_size={plan.bouncer_pool_size}), each host"
        f" DB_POOLER=pgbouncer, {plan.host_workers} workers × {plan.host_threads} threads,"
        f" DB_POOL_SIZE={plan.host_pool_size}, DB_MAX_OVERFLOW=0, loaded together with S1's"
        f" read by {plan.host_connections} wrk connections each for {d.throughput_s} s."
        " Server connections: every `pg_stat_activity` row on the bench's database; clients:"
        " PgBouncer's `SHOW POOLS` (cl_active + cl_waiting).",
    ]


def len_runs(plan: Plan) -> str:
    """How many runs the medians are over, e.g. "3 runs"."""
    return f"{plan.runs} run{'s' if plan.runs != 1 else ''}{' (smoke)' if plan.smoke else ''}"


def cpu_count() -> int:
    """Cores of this machine."""
    return os.cpu_count() or 0


def median_ratio(runs: list[dict], name: str = "ratio_S1_floor") -> float:
    """The median over runs of one within-run ratio, S1 ÷ floor unless named."""
    return median([run[name] for run in runs])


def ratio_lines(runs: list[dict]) -> list[str]:
    """Each within-run ratio, run by run, with its median."""
    named = (
        ("S1 ÷ floor", "ratio_S1_floor"),
        ("Pony ÷ floor", "ratio_pony_floor"),
        ("S1 (ours) ÷ Pony", "ratio_S1_pony"),
    )
    return [
        f"{label} per run: {', '.join(f'{run[name]:.2f}' for run in runs)};"
        f" median **{median_ratio(runs, name):.2f}×**."
        for label, name in named
    ]


def target_rows(runs: list[dict], plan: Plan) -> list[str]:
    """Issue 4's targets, each checked against this run's numbers."""
    ratio = median_ratio(runs)
    over_pony = median_ratio(runs, "ratio_S1_pony")
    peak = max(run["S5"]["peak_connections"] for run in runs)
    count_500 = sum(run["S5"]["count_500"] for run in runs)
    p99_limit_ms = (plan.overload_pool_timeout_s + 0.25) * 1000
    p99 = max((run["S5"]["p99_503_ms"] or 0) for run in runs)
    recoveries = [run["S5"]["recovery_s"] for run in runs]
    recovered = all(value is not None and value <= 1.0 for value in recoveries)
    checks = [
        ("S1 ≥ 0.65× the floor (median)", f"{ratio:.2f}×", ratio >= 0.65),
        ("S1 faster than TechEmpower's Flask entry (median)", f"{over_pony:.2f}×", over_pony > 1),
        (
            "S5 peak server connections ≤ bound",
            f"{peak} ≤ {plan.overload_bound}",
            peak <= plan.overload_bound,
        ),
        ("S5 zero 500s", f"{count_500}", count_500 == 0),
        (
            "S5 503 p99 ≤ DB_POOL_TIMEOUT + 0.25 s (worst run)",
            f"{p99:,.0f} ms ≤ {p99_limit_ms:,.0f} ms",
            p99 <= p99_limit_ms,
        ),
        (
            "S5 served throughput recovers within 1 s (every run)",
            ", ".join("never" if v is None else f"{v:.1f} s" for v in recoveries),
            recovered,
        ),
    ]
    rows = ["| target | measured | met |", "|---|---|---|"]
    rows += [f"| {name} | {value} | {'yes' if met else '**no**'} |" for name, value, met in checks]
    return rows


def network_setup_line(plan: Plan) -> str:
    """How the network scenario ran."""
    return (
        f"- A database one hop away: bench/netproxy.py, a proxy in its own process, holds"
        f" each chunk {plan.network_delay_ms:g} ms each way before passing it on. The floor,"
        " Pony, plain Flask-SQLAlchemy (bench/plain_flask_sqlalchemy.py: `db.get_or_404`,"
        ' the extension\'s defaults; and again with `isolation_level="AUTOCOMMIT"`, one'
        " round trip as ours) and ours run each on loopback and through the proxy,"
        f" all ten side by side in {plan.slices} alternating slices of"
        f" {plan.slice_duration_s:g} s each, with the settings above but"
        f" {plan.network_workers} sync workers each. The added round trip"
        " quoted is measured: `SELECT 1` through the proxy and direct, alternately, the"
        " medians' difference; hold times are the proxy's own, under the load. Round trips"
        " a request: the proxy's count over a further second of wrk on that server alone,"
        " divided by the requests wrk counted."
    )


def network_rows(runs: list[dict]) -> list[str]:
    """One row per subject: req/s and ratios on loopback and through the proxy."""
    networks = [run["network"] for run in runs]

    def cells(key: str) -> list[str]:
        row = []
        for path in ("loopback", "proxied"):
            row += [
                fmt(median([n[path][key]["throughput_rps"] for n in networks]), 0),
                f"{median([n['ratios'][path][key + '_floor'] for n in networks]):.2f}×",
                f"{median([n['ratios'][path][key + '_pony'] for n in networks]):.2f}×",
            ]
        proxied = [n["proxied"][key] for n in networks]
        row.append(
            f"{fmt(median([r['p50_ms'] for r in proxied]), 2)}"
            f" / {fmt(median([r['p99_ms'] for r in proxied]), 2)}"
        )
        row.append(fmt(median([r.get("round_trips_per_request") for r in proxied]), 2))
        errors = [n[path][key] for n in networks for path in ("loopback", "proxied")]
        row.append(fmt(sum(r["non_2xx"] + r["socket_errors"] for r in errors)))
        return row

    columns = ["loopback req/s", "vs floor", "vs Pony", "proxied req/s", "vs floor", "vs Pony"]
    columns += ["proxied p50 / p99 ms", "round trips a request", "errors"]
    return subject_table(networks, columns, cells)


def worker_time_rows(plan: Plan, runs: list[dict]) -> list[str]:
    """Per request, a worker's time on each path: its CPU, the proxy's delay, and the rest.

    A worker serves one request at a time, so its time a request is workers ÷ req/s. The
    proxy's share is the round trips counted through it times the added round trip measured
    in the same run (idle); the rest is loopback's own round trips, the proxy's slower chunks
    under the load, and waiting for a core.
    """
    networks = [run["network"] for run in runs]

    def cells(key: str) -> list[str]:
        row = []
        for path in ("loopback", "proxied"):
            parts = [worker_time(plan, n, path, key) for n in networks]
            row += [fmt(median(part[name] for part in parts), 2) for name in parts[0]]
        return row

    columns = ["loopback: a worker's ms a request", "its CPU", "the rest"]
    columns += ["proxied: a worker's ms a request", "its CPU", "round trips × added", "the rest"]
    return subject_table(networks, columns, cells)


def subject_table(networks: list[dict], columns: list[str], cells) -> list[str]:
    """Markdown: "subject" and columns, then a row of cells(key) per subject."""
    header = ["subject", *columns]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key in networks[0]["loopback"]:
        rows.append("| " + " | ".join([NETWORK_NAMES[key], *cells(key)]) + " |")
    return rows


def worker_time(plan: Plan, network: dict, path: str, key: str) -> dict[str, float]:
    """One run's split of a worker's milliseconds a request on one path (worker_time_rows)."""
    result = network[path][key]
    wall_ms = plan.network_workers * 1000 / result["throughput_rps"]
    parts = {"wall": wall_ms, "cpu": result["cpu_ms_per_request"]}
    if path == "proxied":
        parts["proxy"] = result["round_trips_per_request"] * network["added_rtt"]["added_ms"]
    parts["rest"] = wall_ms - sum(value for name, value in parts.items() if name != "wall")
    return parts


def proxy_lines(runs: list[dict]) -> list[str]:
    """What the proxy really added, measured in each run."""
    networks = [run["network"] for run in runs]
    added = [n["added_rtt"] for n in networks]
    return [
        f"The proxy's added round trip, `SELECT 1` through it less direct (median of"
        f" {added[0]['samples']} each, per run): "
        + ", ".join(f"{a['added_ms']:.2f} ms" for a in added)
        + f"; asked for {added[0]['nominal_ms']:g} ms"
        f" ({fmt(median([a['direct_ms'] for a in added]), 3)} ms direct,"
        f" {fmt(median([a['proxied_ms'] for a in added]), 3)} ms through it).",
        "",
        "Chunks' real hold time under the load, p50 / p99 per run: "
        + ", ".join(
            f"{fmt(n['holds']['p50_ms'], 3)} / {fmt(n['holds']['p99_ms'], 3)} ms" for n in networks
        )
        + f" (asked for {added[0]['nominal_ms'] / 2:g} ms each way). The proxy's own CPU"
        " over the side-by-side load (all ten servers, half of them through it), per run: "
        + ", ".join(f"{n['holds']['cpu_share']:.0%} of a core" for n in networks)
        + ".",
    ]


def round_trip_rows(round_trips: dict) -> list[str]:
    """Route → round trips, medians of single requests after warm-up."""
    rows = [
        "| route | round trips (median) | each request | new connections (their round trips) |",
        "|---|---|---|---|",
    ]
    for route, count in round_trips.items():
        each = ", ".join(map(str, count["per_request"]))
        new = f"{count['new_connections']:g} ({count['round_trips_on_new']:g})"
        rows.append(f"| {route} | {count['round_trips']:g} | {each} | {new} |")
    return rows


def network_sections(plan: Plan, runs: list[dict], round_trips: dict | None) -> list[str]:
    """The network scenario and the round trips per route, when they ran."""
    lines = []
    if any("network" in run for run in runs):
        lines += [
            "## A database one hop away: loopback and through bench/netproxy.py (medians)",
            "",
            *network_rows(runs),
            "",
            *proxy_lines(runs),
            "",
            "Where a worker's time goes, per request (ms, medians over runs): its CPU"
            " (user and system, read from /proc over the slices), the proxy's round trips"
            " times the added round trip above (measured idle), and the rest: loopback's"
            " own round trips, the proxy's slower chunks under the load, and waiting for"
            " one of the machine's cores, which wrk, the proxy and PostgreSQL share.",
            "",
            *worker_time_rows(plan, runs),
            "",
        ]
    if round_trips:
        lines += [
            "## Round trips to PostgreSQL per route of ours (`python -m bench.roundtrips`)",
            "",
            "Counted on the wire by bench/netproxy.py: each simple query and each Sync the app"
            " sent while one request ran, one request at a time, after two of the route's own"
            " to warm its pool; one sync worker of ours on the bench's database.",
            "",
            *round_trip_rows(round_trips),
            "",
        ]
    return lines


def write_report(
    plan: Plan, runs: list[dict], counts: dict, server_version: str, round_trips=None
) -> Path:
    """Write report.md, the charts and results.json to the plan's out_dir."""
    out = plan.out_dir
    out.mkdir(parents=True, exist_ok=True)
    results = {"counts": counts, "runs": runs, "round_trips": round_trips}
    (out / "results.json").write_text(json.dumps(results, indent=1))
    lines = [
        "# Benchmark report",
        "",
        *setup_lines(plan, counts, server_version),
        "",
        *([] if plan.network_only else full_sections(plan, runs, out)),
        *network_sections(plan, runs, round_trips),
    ]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def full_sections(plan: Plan, runs: list[dict], out: Path) -> list[str]:
    """The full run's sections and charts."""
    from bench import charts

    chart_files = charts.draw(runs, plan, out)
    return [
        "## Targets",
        "",
        *target_rows(runs, plan),
        "",
        "## Throughput (medians)",
        "",
        "| scenario | req/s | vs floor | p50 ms | p99 ms | peak server conns | RSS/worker MiB"
        " | errors |",
        "|---|---|---|---|---|---|---|---|",
        *throughput_rows(runs),
        "",
        *[line for ratio in ratio_lines(runs) for line in (ratio, "")],
        "## Many hosts, one PgBouncer (medians; peaks are the max over runs)",
        "",
        *hosts_rows(runs),
        "",
        '## Overload: S5 with the database stalled, ours beside "before"',
        "",
        *overload_rows(runs, plan),
        "",
        *[f"![{name}]({name})" for name in chart_files],
        "",
    ]
