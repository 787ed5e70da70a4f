"""Drive load with wrk over loopback and read back what it measured."""

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

LUA_DIR = Path(__file__).resolve().parent / "lua"
INSTALL_HINT = (
    "wrk is not installed. It is a Debian package: apt-get update && apt-get install -y wrk"
)
SUMMARY_MARK = "BENCH_JSON "


class WrkMissing(RuntimeError):
    """wrk is not on PATH."""


@dataclass(frozen=True)
class Load:
    """One wrk invocation: which script, how hard, for how long."""

    script: str
    connections: int
    threads: int
    duration_s: float
    args: tuple[str, ...] = ()
    timeout_s: float = 10.0


def require_wrk() -> str:
    """The wrk executable, or WrkMissing saying how to install it."""
    path = shutil.which("wrk")
    if path is None:
        raise WrkMissing(INSTALL_HINT)
    return path


def wrk_command(load: Load, base_url: str) -> list[str]:
    """The wrk command line for load against base_url."""
    return [
        require_wrk(),
        f"--threads={load.threads}",
        f"--connections={load.connections}",
        f"--duration={max(1, round(load.duration_s))}s",
        f"--timeout={load.timeout_s:g}s",
        f"--script={LUA_DIR / load.script}",
        base_url,
        "--",
        *load.args,
    ]


def run_wrk(load: Load, base_url: str, records_path: Path | None = None) -> dict:
    """Run wrk to the end and return the summary its Lua done() printed."""
    environment = {**os.environ, "LUA_PATH": f"{LUA_DIR}/?.lua;;"}
    if records_path is not None:
        environment["BENCH_RECORDS"] = str(records_path)
    finished = subprocess.run(
        wrk_command(load, base_url),
        env=environment,
        capture_output=True,
        text=True,
        timeout=load.duration_s + load.timeout_s + 30,
    )
    return parse_summary(finished.stdout, finished.stderr)


def parse_summary(stdout: str, stderr: str) -> dict:
    """The JSON summary line of wrk's output, with throughput added."""
    for line in stdout.splitlines():
        if line.startswith(SUMMARY_MARK):
            summary = json.loads(line.removeprefix(SUMMARY_MARK))
            summary["throughput_rps"] = summary["requests"] / (summary["duration_us"] / 1e6)
            return summary
    raise RuntimeError(f"wrk printed no summary:\n{stdout}\n{stderr}")


class Record(NamedTuple):
    """One response overload.lua recorded."""

    ended_at: float
    status: int
    latency_s: float
    error_code: str | None

    @property
    def sent_at(self) -> float:
        """When the request was sent."""
        return self.ended_at - self.latency_s

    @property
    def served(self) -> bool:
        """Whether the request was answered with a 2xx."""
        return 200 <= self.status < 300


def read_records(path: Path) -> list[Record]:
    """Every response overload.lua recorded, in the order its threads wrote them."""
    records = []
    for line in path.read_text().splitlines():
        ended_at, status, latency_s, code = line.split()
        records.append(
            Record(float(ended_at), int(status), float(latency_s), None if code == "-" else code)
        )
    return records
