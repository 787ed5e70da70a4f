"""What one `python -m bench` invocation measures: sizes, durations, server settings."""

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench.dataset import FULL, SMOKE, DataSize

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# What the throughput table and chart show, in their order: the baselines, then S1–S4.
THROUGHPUT_KEYS = ("floor", "pony", "S1", "S2", "S3", "S4")


@dataclass(frozen=True)
class Durations:
    """Seconds of each phase: warm-up, throughput runs, and S5's before/stall/after."""

    warmup_s: int
    throughput_s: int
    before_stall_s: int
    stall_s: int
    after_stall_s: int

    @property
    def overload_s(self) -> int:
        """The whole S5 wrk run."""
        return self.before_stall_s + self.stall_s + self.after_stall_s


FULL_DURATIONS = Durations(
    warmup_s=2, throughput_s=10, before_stall_s=2, stall_s=3, after_stall_s=3
)
SMOKE_DURATIONS = Durations(
    warmup_s=1, throughput_s=1, before_stall_s=1, stall_s=1, after_stall_s=1
)


@dataclass(frozen=True)
class Plan:
    """Everything a bench run needs to know, fixed before it starts."""

    size: DataSize
    durations: Durations
    runs: int
    out_dir: Path
    smoke: bool
    # Throughput scenarios: sync workers, as SPEC's default GUNICORN_THREADS=1 gives.
    workers: int = 4
    connections: int = 16
    wrk_threads: int = 2
    pool_size: int = 2
    max_overflow: int = 1
    pre_ping: bool = True
    # S5: two workers whose pools hold one connection each, ten times that many clients.
    overload_workers: int = 2
    overload_pool_size: int = 1
    overload_max_overflow: int = 0
    overload_pool_timeout_s: int = 1
    # S5's servers connect as a role limited to this many connections, a small server's
    # max_connections in miniature (bench/ceiling.py): twice our worst case with its health
    # probes, 2 × (1 + 0 + 1), and well under the 20 the unbounded "before" pool would open.
    overload_ceiling: int = 8
    signed_in_users: int = 32
    # Many hosts (issue 8): 1, 2 and 3 app hosts behind one PgBouncer in transaction mode,
    # each host two gthread workers of four threads with pools of 4 + 0.
    host_counts: tuple[int, ...] = (1, 2, 3)
    host_workers: int = 2
    host_threads: int = 4
    host_pool_size: int = 4
    bouncer_pool_size: int = 4
    # The floor, Pony and S1 alternate in slices of this many seconds (bench/runner.py).
    slice_s: int = 2
    # Issue 16: bench/netproxy.py holds each chunk this long each way (bench/network.py).
    network_delay_ms: float = 0.5
    # Each subject there runs as shipped: SPEC's default WEB_CONCURRENCY, the shape.
    network_workers: int = 2
    # Only the network scenario and the round trips per route (`--network`).
    network_only: bool = False
    run_id: str = field(default_factory=lambda: str(os.getpid()))

    @property
    def slices(self) -> int:
        """How many slices each side-by-side server gets: its throughput time in all."""
        return max(1, self.durations.throughput_s // self.slice_s)

    @property
    def slice_duration_s(self) -> float:
        """Seconds of one slice (the whole throughput time when it is shorter than one)."""
        return self.durations.throughput_s / self.slices

    @property
    def logs_dir(self) -> Path:
        """Where every server's log is kept."""
        return self.out_dir / "logs"

    @property
    def host_connections(self) -> int:
        """wrk connections per host: one per worker thread."""
        return self.host_workers * self.host_threads

    @property
    def host_client_bound(self) -> int:
        """Most client connections one host may open to PgBouncer: workers × pool."""
        return self.host_workers * self.host_pool_size

    @property
    def overload_bound(self) -> int:
        """Most server connections S5's app may hold: workers × (pool_size + max_overflow)."""
        return self.overload_workers * (self.overload_pool_size + self.overload_max_overflow)

    @property
    def overload_connections(self) -> int:
        """S5's clients: ten times the pool capacity."""
        return 10 * self.overload_bound


def make_plan(
    smoke: bool, runs: int, out_dir: Path | None, throughput_s: int | None = None, **overrides
) -> Plan:
    """The full plan, or the smoke plan (tiny data, a second per scenario).

    throughput_s, when given, is each throughput scenario's seconds of load in place of the
    plan's own.
    """
    durations = SMOKE_DURATIONS if smoke else FULL_DURATIONS
    if throughput_s:
        durations = replace(durations, throughput_s=throughput_s)
    return Plan(
        size=SMOKE if smoke else FULL,
        durations=durations,
        runs=runs,
        out_dir=out_dir or RESULTS_DIR,
        smoke=smoke,
        **overrides,
    )
