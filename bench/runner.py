"""One run of every scenario: each server started, loaded, sampled and stopped in turn."""

import json
import re
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from statistics import median

import psycopg2

from bench.ceiling import Neighbour, server_words
from bench.dataset import BENCH_PASSWORD, signed_in_emails
from bench.load import Load, Record, read_records, run_wrk
from bench.plan import Plan
from bench.sampler import Sampler, Samples
from bench.servers import Server, ServerSpec, start_server
from bench.stats import per_bin, percentile, recovery_s

SECRET_KEY = "bench-secret-key"
# The servers loaded side by side in alternating slices: server label -> result key.
SIDE_BY_SIDE = {"floor": "floor", "pony": "pony", "app": "S1"}
BASELINES = {"floor", "pony"}
# gunicorn's default access line: … "GET /path HTTP/1.1" 200 …
ACCESS_LINE = re.compile(r'" \d{3} ')


@dataclass(frozen=True)
class Target:
    """The database a run works against, what is in it, and where tokens go."""

    url: str
    overload_url: str
    max_service_id: int
    api_ready: bool
    work_dir: Path

    @property
    def tokens_path(self) -> Path:
        """The file S2–S4's wrk scripts read bearer tokens from."""
        return self.work_dir / "tokens.txt"


def environment(plan: Plan, url: str, application_name: str, overload: bool) -> dict[str, str]:
    """The variables SPEC names, as a deployment would set them, for one server."""
    pool_size = plan.overload_pool_size if overload else plan.pool_size
    max_overflow = plan.overload_max_overflow if overload else plan.max_overflow
    return {
        "DATABASE_URL": url,
        "SECRET_KEY": SECRET_KEY,
        "DB_APPLICATION_NAME": application_name,
        "WEB_CONCURRENCY": str(plan.overload_workers if overload else plan.workers),
        "GUNICORN_THREADS": str(plan.overload_connections if overload else 1),
        "DB_POOL_SIZE": str(pool_size),
        "DB_MAX_OVERFLOW": str(max_overflow),
        "DB_POOL_TIMEOUT": str(plan.overload_pool_timeout_s if overload else 10),
        "DB_POOL_PRE_PING": "true" if plan.pre_ping else "false",
    }


def application_name(plan: Plan, label: str, run_index: int) -> str:
    """A name no other server, run or engineer uses, so the sampler counts only this one."""
    return f"bench{plan.run_id}-r{run_index}-{label}"


def server_spec(plan: Plan, target: Target, label: str, run_index: int) -> ServerSpec:
    """The server behind a label: floor, pony, app (S1–S4), overload (S5) or before."""
    name = application_name(plan, label, run_index)
    overload = label in {"overload", "before"}
    env = environment(plan, target.overload_url if overload else target.url, name, overload)
    if label == "overload":
        # The ceiling is all this deployment may hold: its own budget guard checks it.
        env["DB_CONNECTION_BUDGET"] = str(plan.overload_ceiling)
    if label == "before":
        # Pool limits removed: an overflow the size of SPEC's ceiling, no budget guard.
        env["DB_MAX_OVERFLOW"] = "1000"
    variant = label if label in BASELINES | {"before"} else None
    return ServerSpec(label, variant, env)


def sampled_wrk(server: Server, load: Load, records: Path | None = None):
    """Run wrk while sampling; return its summary and the samples."""
    name = server.spec.environment["DB_APPLICATION_NAME"]
    cpu_s = server.workers_cpu_s()
    with Sampler(name, server) as sampler:
        summary = run_wrk(load, server.base_url, records)
    sampler.samples.workers_cpu_s = server.workers_cpu_s() - cpu_s
    return summary, sampler.samples


def throughput_load(plan: Plan, script: str, args: tuple[str, ...], seconds: int) -> Load:
    """A closed-loop wrk load at the plan's concurrency."""
    return Load(script, plan.connections, plan.wrk_threads, seconds, args)


def run_throughput(plan: Plan, server: Server, script: str, args: tuple[str, ...]) -> dict:
    """Warm up, then measure one throughput scenario."""
    run_wrk(throughput_load(plan, script, args, plan.durations.warmup_s), server.base_url)
    load = throughput_load(plan, script, args, plan.durations.throughput_s)
    summary, samples = sampled_wrk(server, load)
    return throughput_result(summary, samples)


def throughput_result(summary: dict, samples: Samples) -> dict:
    """What the report shows of a throughput scenario."""
    return {
        "throughput_rps": summary["throughput_rps"],
        "p50_ms": summary["latency_p50_us"] / 1000,
        "p99_ms": summary["latency_p99_us"] / 1000,
        "requests": summary["requests"],
        "non_2xx": summary["non_2xx"],
        "socket_errors": socket_errors(summary),
        "peak_connections": samples.peak_connections,
        "peak_worker_rss_mib": samples.peak_worker_rss_mib,
        "workers_cpu_s": samples.workers_cpu_s,
    }


def socket_errors(summary: dict) -> int:
    """wrk's failed connects, reads and writes, and its timeouts."""
    return sum(
        summary[kind] for kind in ("connect_errors", "read_errors", "write_errors", "timeouts")
    )


class Stall:
    """Stall the database for S5: hold an exclusive lock on services, as a migration might."""

    def __init__(self, url: str, after_s: float, hold_s: float):
        self.url, self.after_s, self.hold_s = url, after_s, hold_s
        self.started_at = self.ended_at = None
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        """Wait, lock, hold, release; note when the stall began and ended."""
        time.sleep(self.after_s)
        connection = psycopg2.connect(self.url, application_name="bench-stall")
        try:
            with connection.cursor() as cursor:
                cursor.execute("LOCK TABLE services IN ACCESS EXCLUSIVE MODE")
                self.started_at = time.time()
                time.sleep(self.hold_s)
            connection.rollback()
            self.ended_at = time.time()
        finally:
            connection.close()


def run_overload(plan: Plan, server: Server, target: Target, records: Path) -> dict:
    """S5: ten times the pool capacity in clients while the database stalls."""
    args = (str(target.max_service_id),)
    run_wrk(Load("services.lua", 2, 1, plan.durations.warmup_s, args), server.base_url)
    clients = plan.overload_connections
    load = Load("overload.lua", clients, clients, plan.durations.overload_s, args, timeout_s=30)
    durations = plan.durations
    stall = Stall(target.url, durations.before_stall_s, durations.stall_s)
    started_at = time.time()
    stall.thread.start()
    with Neighbour(target.overload_url) as neighbour:
        summary, samples = sampled_wrk(server, load, records)
    stall.thread.join()
    result = overload_result(plan, summary, samples, read_records(records), stall, started_at)
    result["server_errors"] = server_errors(server.log_lines)
    result["neighbour"] = neighbour.result()
    return result


def overload_result(plan, summary, samples, records, stall: Stall, started_at: float) -> dict:
    """What the report shows of S5: statuses, errors, stall latency, connections, recovery."""
    statuses = Counter(record.status for record in records)
    latencies_503 = [record.latency_s for record in records if record.status == 503]
    served = [record.ended_at for record in records if record.served]
    steady = (started_at + 0.3, stall.started_at)
    recovery = recovery_s(served, steady, stall.ended_at)
    return {
        "requests": len(records),
        "statuses": {str(status): count for status, count in sorted(statuses.items())},
        "error_codes": error_codes(records),
        "error_share": error_share(records),
        "share_503": statuses[503] / len(records) if records else 0.0,
        "share_503_sent_in_stall": share_503_sent_in_stall(records, stall),
        "error_share_answered_before_stall": error_share(
            [r for r in records if r.ended_at < stall.started_at]
        ),
        "sent_in_stall": sent_in_stall_result(records, stall),
        "p50_503_ms": ms(percentile(latencies_503, 50)),
        "p99_503_ms": ms(percentile(latencies_503, 99)),
        "count_500": statuses[500],
        "socket_errors": summary["connect_errors"]
        + summary["read_errors"]
        + summary["write_errors"],
        "timeouts": summary["timeouts"],
        "peak_connections": samples.peak_connections,
        "bound": plan.overload_bound,
        "ceiling": plan.overload_ceiling,
        "recovery_s": recovery,
        "recovered_within_1s": recovery is not None and recovery <= 1.0,
        "timeline": timeline(records, samples, started_at, stall),
        "peak_worker_rss_mib": samples.peak_worker_rss_mib,
    }


def error_codes(records: list[Record]) -> dict[str, int]:
    """How many failed responses carried each error code (the status when there was none)."""
    return dict(Counter(r.error_code or str(r.status) for r in records if not r.served))


def error_share(records: list[Record]) -> float:
    """The share of records not answered with a 2xx."""
    return sum(not record.served for record in records) / len(records) if records else 0.0


def sent_during(records: list[Record], stall: Stall) -> list[Record]:
    """The responses to requests sent while the database was stalled."""
    return [r for r in records if stall.started_at <= r.sent_at < stall.ended_at]


def share_503_sent_in_stall(records: list[Record], stall: Stall) -> float:
    """Of the requests sent while the database was stalled, the share answered 503."""
    statuses = [record.status for record in sent_during(records, stall)]
    return statuses.count(503) / len(statuses) if statuses else 0.0


def sent_in_stall_result(records: list[Record], stall: Stall) -> dict:
    """How the requests sent during the stall were answered, and how long each took."""
    during = sent_during(records, stall)
    latencies = [record.latency_s for record in during]
    return {
        "requests": len(during),
        "statuses": dict(Counter(str(record.status) for record in during)),
        "p50_ms": ms(percentile(latencies, 50)),
        "p99_ms": ms(percentile(latencies, 99)),
    }


def server_errors(log_lines: list[str]) -> dict[str, int]:
    """The server's FATAL errors the app logged, e.g. too many connections, by text."""
    found = Counter(server_words(message(line)) for line in log_lines if "FATAL:" in line)
    return dict(found.most_common())


def message(log_line: str) -> str:
    """The message of a log line: a JSON line's "message", a text line as it is."""
    try:
        return json.loads(log_line)["message"]
    except (ValueError, KeyError, TypeError):
        return log_line


def timeline(records: list[Record], samples: Samples, started_at: float, stall: Stall) -> dict:
    """Series for the S5 charts, in seconds from the start of the run."""
    served = [record.ended_at for record in records if record.served]
    failed = [record.ended_at for record in records if not record.served]
    end = max((record.ended_at for record in records), default=started_at)
    return {
        "stall": [stall.started_at - started_at, stall.ended_at - started_at],
        "served_per_100ms": per_bin(served, started_at, end),
        "failed_per_100ms": per_bin(failed, started_at, end),
        "connections": [(moment - started_at, count) for moment, count in samples.connections],
    }


def ms(seconds: float | None) -> float | None:
    """Seconds as milliseconds, keeping None."""
    return None if seconds is None else seconds * 1000


@contextmanager
def serving(spec: ServerSpec, log_dir: Path) -> Iterator[Server]:
    """A started server while entered; always stopped, its log kept."""
    server = start_server(spec)
    try:
        yield server
    finally:
        server.stop()
        keep_server_log(server, log_dir)


def keep_server_log(server: Server, log_dir: Path) -> None:
    """Write the server's log without its access lines, to explain any 500 or crash."""
    log_dir.mkdir(parents=True, exist_ok=True)
    lines = [line for line in server.log_lines if not ACCESS_LINE.search(line)]
    name = server.spec.environment["DB_APPLICATION_NAME"]
    (log_dir / f"{name}.log").write_text("\n".join(lines) + "\n")


def sign_in(base_url: str, emails: list[str]) -> list[str]:
    """Log each user in through POST /api/auth/login; return their bearer tokens."""
    tokens = []
    for email in emails:
        body = json.dumps({"email": email, "password": BENCH_PASSWORD}).encode()
        request = urllib.request.Request(
            base_url + "/api/auth/login", body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            tokens.append(json.load(response)["token"])
    return tokens


def run_once(plan: Plan, target: Target, run_index: int) -> dict:
    """Every scenario once: floor, Pony and S1 side by side, S2–S4, S5 and "before"."""
    logs = plan.logs_dir
    with ExitStack() as stack:
        servers = {
            key: stack.enter_context(serving(server_spec(plan, target, label, run_index), logs))
            for label, key in SIDE_BY_SIDE.items()
        }
        results = run_app_scenarios(plan, servers, target)
    for label, key in (("overload", "S5"), ("before", "before")):
        records = target.work_dir / f"{key}-run{run_index}.records"
        with serving(server_spec(plan, target, label, run_index), logs) as server:
            results[key] = run_overload(plan, server, target, records)
    results.update(ratios(results))
    return results


def ratios(results: dict) -> dict[str, float]:
    """S1 and Pony against the floor, and S1 against Pony, all within one run."""

    def rps(key: str) -> float:
        return results[key]["throughput_rps"]

    return {
        "ratio_S1_floor": rps("S1") / rps("floor"),
        "ratio_pony_floor": rps("pony") / rps("floor"),
        "ratio_S1_pony": rps("S1") / rps("pony"),
    }


def run_side_by_side(plan: Plan, servers: dict[str, Server], target: Target) -> dict:
    """S1's request to each server in alternating slices, so slow drifts hit all alike.

    Each round of slices runs in the reverse order of the one before (floor, Pony, S1, then
    S1, Pony, floor, ...), which cancels a steady drift as well; each server gets
    plan.durations.throughput_s in all.
    """
    args = (str(target.max_service_id),)
    for server in servers.values():
        run_wrk(
            throughput_load(plan, "services.lua", args, plan.durations.warmup_s), server.base_url
        )
    slices = {key: [] for key in servers}
    order = list(servers.items())
    for _ in range(plan.slices):
        for key, server in order:
            load = throughput_load(plan, "services.lua", args, plan.slice_duration_s)
            slices[key].append(sampled_wrk(server, load))
        order.reverse()
    return {key: sliced_result(measured) for key, measured in slices.items()}


def sliced_result(slices: list[tuple[dict, Samples]]) -> dict:
    """One scenario's result over its slices: summed throughput, per-slice latency medians."""
    results = [throughput_result(summary, samples) for summary, samples in slices]
    requests = sum(summary["requests"] for summary, _ in slices)
    seconds = sum(summary["duration_us"] for summary, _ in slices) / 1e6
    cpu_s = sum(result["workers_cpu_s"] for result in results)
    return {
        "throughput_rps": requests / seconds,
        "cpu_ms_per_request": cpu_s * 1000 / requests if requests else None,
        "p50_ms": median(result["p50_ms"] for result in results),
        "p99_ms": median(result["p99_ms"] for result in results),
        "requests": requests,
        "non_2xx": sum(result["non_2xx"] for result in results),
        "socket_errors": sum(result["socket_errors"] for result in results),
        "peak_connections": max(result["peak_connections"] for result in results),
        "peak_worker_rss_mib": max(result["peak_worker_rss_mib"] for result in results),
        "slices_rps": [result["throughput_rps"] for result in results],
    }


def run_app_scenarios(plan: Plan, servers: dict[str, Server], target: Target) -> dict:
    """Floor, Pony and S1 side by side, then S2–S4 on the app when the API's tables exist."""
    service_args = (str(target.max_service_id),)
    results = run_side_by_side(plan, servers, target)
    if not target.api_ready:
        return results
    server = servers["S1"]
    target.tokens_path.write_text("\n".join(sign_in(server.base_url, signed_in_emails())))
    tokens = str(target.tokens_path)
    for key, script, args in (
        ("S2", "orders.lua", (tokens,)),
        ("S3", "create_orders.lua", (tokens, *service_args)),
        ("S4", "mix.lua", (tokens, *service_args)),
    ):
        results[key] = run_throughput(plan, server, script, args)
    return results
