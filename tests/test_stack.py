"""`bin/dev stack`: nginx → gunicorn → (PgBouncer) → PostgreSQL comes up; Ctrl-C leaves nothing."""

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

from tests.servers import ROOT, free_port

pytestmark = pytest.mark.process


def installed_venv_view(folder: Path) -> Path:
    """A virtualenv that is this one, stamped as up to date, so bin/dev installs nothing."""
    venv = folder / "venv"
    venv.mkdir()
    real = Path(sys.prefix)
    for entry in real.iterdir():
        if entry.name != ".requirements.sha":
            (venv / entry.name).symlink_to(entry)
    requirements = (ROOT / "requirements.txt").read_bytes() + (
        ROOT / "requirements-dev.txt"
    ).read_bytes()
    (venv / ".requirements.sha").write_text(hashlib.sha256(requirements).hexdigest() + "\n")
    return venv


def wait_for_status(url: str, status: int, timeout_s: float) -> requests.Response:
    """GET url until it answers status."""
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(requests.ConnectionError):
            response = requests.get(url, timeout=2)
            if response.status_code == status or time.monotonic() > deadline:
                return response
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer within {timeout_s} s")
        time.sleep(0.2)


def scraped_up(prometheus_url: str, timeout_s: float) -> bool:
    """Whether Prometheus reports its one target up within timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            targets = requests.get(prometheus_url + "/api/v1/targets", timeout=2).json()
            if [t["health"] for t in targets["data"]["activeTargets"]] == ["up"]:
                return True
        time.sleep(0.5)
    return False


def group_alive(group: int) -> bool:
    """Whether any process of the process group is left."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize(
    ("pooler", "replica"),
    [
        pytest.param("none", "0", id="none"),
        pytest.param("pgbouncer", "0", id="pgbouncer"),
        # Its own primary and streaming replica (DB_REPLICA=1), gone with the rest on Ctrl-C.
        pytest.param("none", "1", id="replica"),
        # Production's shape with a replica: the primary behind PgBouncer, the replica direct.
        pytest.param("pgbouncer", "1", id="pgbouncer-replica"),
    ],
)
def test_stack_serves_through_nginx_and_ctrl_c_stops_every_part(
    server_database_url, tmp_path, pooler, replica
):
    proxy_port, prometheus_port = free_port(), free_port()
    # The stack's temporary files, readable by the servers' own users (pytest's are not).
    temp_dir = Path(tempfile.mkdtemp(prefix="stack-test-"))
    temp_dir.chmod(0o755)
    env = {
        **os.environ,
        "TMPDIR": str(temp_dir),
        "DB_POOLER": pooler,
        "DB_REPLICA": replica,
        "VENV": str(installed_venv_view(tmp_path)),
        "DATABASE_URL": server_database_url,
        "SECRET_KEY": "test-secret",
        "PROXY_PORT": str(proxy_port),
        "PORT": str(free_port()),
        "METRICS_PORT": str(free_port()),
        "PROMETHEUS_PORT": str(prometheus_port),
    }
    log = (tmp_path / "stack.log").open("w+")
    # A session of its own: its process group is what a terminal's Ctrl-C reaches.
    stack = subprocess.Popen(
        [str(ROOT / "bin" / "dev"), "stack"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        health = wait_for_status(f"http://127.0.0.1:{proxy_port}/api/health", 200, 90)
        assert health.status_code == 200, (tmp_path / "stack.log").read_text()
        # Behind PgBouncer, health reports its pool: the stack wired the admin console.
        assert ("pooler" in health.json()["database"]) == (pooler == "pgbouncer")
        assert ("replicas" in health.json()["database"]) == (replica == "1")
        unrouted = requests.get(f"http://127.0.0.1:{proxy_port}/metrics", timeout=5)
        assert unrouted.status_code == 404  # nginx answers, not gunicorn
        assert scraped_up(f"http://127.0.0.1:{prometheus_port}", timeout_s=20)
        os.killpg(stack.pid, signal.SIGINT)
        assert stack.wait(60) == 0
        output = (tmp_path / "stack.log").read_text()
        # The stack uses this machine's Redis (the tests need it), so no worker counts alone.
        assert "stack: rate limits counted in Redis at 127.0.0.1:6379" in output
        assert "counts alone" not in output
        assert "DB_CONNECTION_BUDGET is unset" not in output, "the stack sets PgBouncer's"
        assert "Pool recreating" not in output
        deadline = time.monotonic() + 10
        while group_alive(stack.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not group_alive(stack.pid), "a part of the stack is still running"
        assert list(temp_dir.iterdir()) == [], "the stack left files behind"
    finally:
        if group_alive(stack.pid):
            os.killpg(stack.pid, signal.SIGKILL)
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_stack_names_a_taken_proxy_port_once(tmp_path, server_database_url):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        proxy_port = taken.getsockname()[1]
        env = {
            **os.environ,
            "VENV": str(installed_venv_view(tmp_path)),
            "DATABASE_URL": server_database_url,
            "SECRET_KEY": "test-secret",
            "PROXY_PORT": str(proxy_port),
        }
        finished = subprocess.run(
            [str(ROOT / "bin" / "dev"), "stack"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert finished.returncode != 0
    output = finished.stdout + finished.stderr
    named = [line for line in output.splitlines() if "PROXY_PORT" in line]
    assert named == [f"stack: PROXY_PORT {proxy_port} on 127.0.0.1 is already in use"], output
    assert "bind()" not in output, "nginx never started"
