"""The benchmark's smoke run: every scenario for a second, so `python -m bench` never rots."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SMOKE_TIMEOUT_S = 120


def require(tool_present: bool, reason: str) -> None:
    """Skip without the tool on a developer's machine; fail in CI, where it must be."""
    if tool_present:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI lacks what the bench smoke needs: {reason}")
    pytest.skip(reason)


@pytest.mark.process
def test_the_bench_smoke_run_reports_every_scenario(tmp_path):
    require(shutil.which("wrk") is not None, "wrk is not installed: apt-get install -y wrk")
    require(
        shutil.which("pgbouncer") is not None,
        "pgbouncer is not installed: apt-get install -y pgbouncer",
    )
    require(
        importlib.util.find_spec("matplotlib") is not None,
        "matplotlib is not installed: pip install -r bench/requirements.txt",
    )
    finished = run_module("bench", "--smoke", "--runs", "1", "--out", str(tmp_path))
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    run = json.loads((tmp_path / "results.json").read_text())["runs"][0]
    assert run["floor"]["requests"] > 0
    for key in ("pony", "S1"):
        assert run[key]["requests"] > 0
        assert run[key]["non_2xx"] == 0
    assert run["ratio_S1_pony"] > 0
    for step in run["hosts"].values():
        assert step["requests"] > 0
        assert step["peak_server_connections"] <= step["server_pool"]
    overload, before = run["S5"], run["before"]
    assert overload["peak_connections"] <= overload["bound"] < overload["ceiling"]
    assert overload["count_500"] == 0
    assert overload["neighbour"]["refused"] == 0
    assert overload["server_errors"] == {}
    # The role's limit keeps even the unbounded side off the shared server's max_connections.
    assert before["peak_connections"] <= before["ceiling"]
    report = (tmp_path / "report.md").read_text()
    assert "S1 GET /api/services/<id>" in report
    assert "TechEmpower's Flask entry" in report
    assert "Many hosts, one PgBouncer" in report
    for chart in ("throughput.png", "overload_connections.png", "overload_served.png"):
        assert (tmp_path / chart).stat().st_size > 0


@pytest.mark.process
def test_the_network_case_runs_every_subject_as_shipped_on_loopback_and_proxied(tmp_path):
    require(shutil.which("wrk") is not None, "wrk is not installed: apt-get install -y wrk")
    finished = run_module("bench", "--network", "--smoke", "--runs", "1", "--out", str(tmp_path))
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    network = json.loads((tmp_path / "results.json").read_text())["runs"][0]["network"]
    for path in ("loopback", "proxied"):
        for subject in network[path].values():
            assert subject["requests"] > 0
            assert subject["non_2xx"] == subject["socket_errors"] == 0
            # A sync worker serves one request at a time: its CPU fits in its time a request
            # (with /proc's 10 ms ticks of slack).
            worker_ms = 2 * 1000 / subject["throughput_rps"]
            assert 0 < subject["cpu_ms_per_request"] <= worker_ms * 1.1
    trips = {key: round(s["round_trips_per_request"]) for key, s in network["proxied"].items()}
    assert trips == {"floor": 1, "pony": 2, "plain": 3, "plain-autocommit": 1, "S1": 1}
    assert network["added_rtt"]["added_ms"] >= 1.0  # 0.5 ms each way, at least.
    report = (tmp_path / "report.md").read_text()
    assert "but 2 sync workers each" in report
    assert "Where a worker's time goes" in report


def run_module(module: str, *args: str, env: dict[str, str] | None = None):
    """Run python -m module from the repository's root; return the finished process."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT_S,
    )


def run_without_tools(module: str, *args: str, empty_dir: Path) -> subprocess.CompletedProcess:
    """Run python -m module with a PATH on which no tool is found."""
    return run_module(module, *args, env={**os.environ, "PATH": str(empty_dir)})


def test_the_bench_says_how_to_install_wrk_when_it_is_missing(tmp_path):
    finished = run_without_tools("bench", "--smoke", empty_dir=tmp_path)
    assert finished.returncode == 2
    assert "apt-get install -y wrk" in finished.stderr


@pytest.mark.process
def test_the_round_trip_count_reports_every_route():
    # Its own database, proxy and gunicorn; one measured request a route keeps it quick.
    finished = run_module("bench.roundtrips", "--requests", "1", "--json")
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    counts = json.loads(finished.stdout.splitlines()[-1])
    from bench.roundtrips import ROUTES

    assert list(counts) == list(ROUTES)
    assert counts["GET /api/health/live"]["round_trips"] == 0
    assert counts["GET /api/services/<id>"]["round_trips"] >= 1
    assert counts["GET /api/services/<id>"]["new_connections"] == 0


@pytest.mark.process
def test_the_instruction_count_reports_every_route():
    require(
        shutil.which("valgrind") is not None,
        "valgrind is not installed: apt-get install -y valgrind",
    )
    # The floor alone, and few requests: the command's own start-up is most of the minute.
    finished = run_module("bench.instructions", "--subjects", "floor", "--requests", "20")
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    from bench.instructions import ROUTES

    rows = [line for line in finished.stdout.splitlines() if line.startswith("| `GET ")]
    assert [row.split("`")[1] for row in rows] == [f"GET {path}" for path in ROUTES]
    counts = [int(row.split("|")[2].strip().rstrip("k").replace(",", "")) for row in rows]
    assert all(count > 0 for count in counts)


@pytest.mark.process
def test_every_layer_runs_for_plain_and_ours():
    """The layers' child runs as callgrind would run it, without callgrind: fast, and it
    breaks here, not in an hour-long count, when the app's read changes shape."""
    from bench import dataset
    from bench.instructions import LAYERS, ROW_READS
    from bench.postgres import migrated_database
    from bench.runner import SECRET_KEY

    with migrated_database("bench") as url:
        dataset.load(url, dataset.SMOKE)
        env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": SECRET_KEY}
        env["DB_APPLICATION_NAME"] = "bench-layers"  # The baselines need one.
        for key in ROW_READS:
            for layer in LAYERS:
                child = ("--child", key, layer, "3")
                finished = run_module("bench.instructions", *child, env=env)
                assert finished.returncode == 0, (key, layer, finished.stderr[-2000:])


def test_the_instruction_count_refuses_an_unknown_subject():
    finished = run_module("bench.instructions", "--subjects", "flour")
    assert finished.returncode == 2
    assert "choose from floor, pony, plain, ours" in finished.stderr
