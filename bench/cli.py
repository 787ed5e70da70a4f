"""`python -m bench`: create, migrate and load a database, run every scenario, report."""

import argparse
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import psycopg2

from bench import ceiling, dataset
from bench.hosts import run_hosts
from bench.load import WrkMissing, require_wrk
from bench.network import count_round_trips, run_network
from bench.plan import RESULTS_DIR, make_plan
from bench.postgres import ADMIN_DSN, migrated_database
from bench.roundtrips import table
from bench.runner import Target, run_once

MATPLOTLIB_HINT = "matplotlib is not installed: pip install -r bench/requirements.txt"
PGBOUNCER_HINT = "pgbouncer is not installed: apt-get install -y pgbouncer"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny data, a second per scenario")
    parser.add_argument("--runs", type=int, default=3, help="repeat every scenario (default 3)")
    parser.add_argument("--out", type=Path, help="where to write the report (bench/results/)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers for S1–S4")
    parser.add_argument(
        "--network-workers",
        type=int,
        default=2,
        help="gunicorn workers of each subject on loopback and through the proxy (2, as shipped)",
    )
    parser.add_argument("--no-pre-ping", action="store_true", help="DB_POOL_PRE_PING=false")
    parser.add_argument(
        "--network",
        action="store_true",
        help="only every subject on loopback and through bench/netproxy.py, and the round"
        " trips per route (report in bench/results/network/)",
    )
    parser.add_argument(
        "--delay-ms", type=float, default=0.5, help="the proxy's delay each way (0.5)"
    )
    parser.add_argument("--seconds", type=int, help="load per throughput scenario (10; smoke 1)")
    return parser.parse_args(argv)


def missing_tools() -> str | None:
    """What must be installed first, said how, or None."""
    try:
        require_wrk()
    except WrkMissing as missing:
        return str(missing)
    if shutil.which("pgbouncer") is None:
        return PGBOUNCER_HINT
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return MATPLOTLIB_HINT
    return None


def server_version() -> str:
    """PostgreSQL's version, as the report names it."""
    connection = psycopg2.connect(ADMIN_DSN)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            return "PostgreSQL " + cursor.fetchone()[0].split()[0]
    finally:
        connection.close()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 2 when a tool is missing."""
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the servers stop and the database is dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if problem := missing_tools():
        print(problem, file=sys.stderr)
        return 2
    plan = make_plan(
        args.smoke,
        args.runs,
        args.out or (RESULTS_DIR / "network" if args.network else None),
        throughput_s=args.seconds,
        workers=args.workers,
        network_workers=args.network_workers,
        pre_ping=not args.no_pre_ping,
        network_delay_ms=args.delay_ms,
        network_only=args.network,
    )
    role = None
    try:
        with migrated_database("bench") as url:
            counts = dataset.load(url, plan.size)
            print(f"bench: database {url} loaded: {counts}", flush=True)
            role = ceiling.create_role(url, plan.overload_ceiling)
            runs = run_all(plan, url, ceiling.url_as(url, role), counts)
            round_trips = None if plan.smoke else count_round_trips(plan, url)
    finally:
        if role:
            ceiling.drop_role(role)
    if round_trips:
        print("bench: round trips per route of ours:\n" + table(round_trips), flush=True)
    from bench.report import write_report

    path = write_report(plan, runs, counts, server_version(), round_trips)
    print(path.read_text())
    print(f"bench: report written to {path}")
    return 0


def run_all(plan, url: str, overload_url: str, counts: dict[str, int]) -> list[dict]:
    """Every run, printing a line per scenario as it finishes."""
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-") as work_dir:
        target = Target(
            url, overload_url, counts["max_services_id"], "orders" in counts, Path(work_dir)
        )
        if not target.api_ready:
            print("bench: no users and orders tables (the API has not landed): S2–S4 skipped")
        for index in range(plan.runs):
            result = {} if plan.network_only else run_once(plan, target, index)
            if not plan.network_only:
                result["hosts"] = run_hosts(plan, target, index)
            # Eight more servers: left out of the smoke run, which must stay quick.
            if plan.network_only or not plan.smoke:
                result["network"] = run_network(plan, target, index)
            print(f"bench: run {index + 1}/{plan.runs}: {summary_line(result)}", flush=True)
            runs.append(result)
    return runs


def summary_line(result: dict) -> str:
    """One line of a run's headline numbers."""
    network = network_line(result["network"]) if "network" in result else ""
    if "floor" not in result:
        return network
    floor, pony, s1, s5, before = (result[key] for key in ("floor", "pony", "S1", "S5", "before"))
    return (
        f"floor {floor['throughput_rps']:.0f} req/s, Pony {pony['throughput_rps']:.0f}"
        f" ({result['ratio_pony_floor']:.2f}×), S1 {s1['throughput_rps']:.0f}"
        f" ({result['ratio_S1_floor']:.2f}×, {result['ratio_S1_pony']:.2f}× Pony);"
        f" S5 peak {s5['peak_connections']}/{s5['bound']} 503s {s5['share_503']:.0%}"
        f" p99 {s5['p99_503_ms'] or 0:.0f} ms, 500s {s5['count_500']};"
        f" before peak {before['peak_connections']}/{before['ceiling']},"
        f" errors {before['error_share']:.0%}, neighbour refused {before['neighbour']['refused']};"
        + hosts_line(result["hosts"])
        + (";" + network if network else "")
    )


def network_line(network: dict) -> str:
    """Each subject's req/s on loopback and through the proxy, and the proxy's added trip."""
    cells = [
        f" {path}: "
        + ", ".join(
            f"{key} {network[path][key]['throughput_rps']:.0f}"
            f" ({network['ratios'][path][key + '_floor']:.2f}×)"
            for key in network[path]
        )
        + ";"
        for path in ("loopback", "proxied")
    ]
    return "".join(cells) + f" proxy adds {network['added_rtt']['added_ms']:.2f} ms a round trip"


def hosts_line(hosts: dict) -> str:
    """Req/s and peak server connections for each host count."""
    return "".join(
        f" {count} host{'s' if count != '1' else ''} {step['throughput_rps']:.0f} req/s,"
        f" {step['peak_server_connections']} server conns"
        for count, step in hosts.items()
    )
