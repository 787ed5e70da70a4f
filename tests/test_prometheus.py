"""deploy/prometheus: the config and rules pass promtool, every alert is unit-tested both ways,
and a real Prometheus scrapes a real gunicorn through the rendered config."""

import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

from deploy.prometheus import run
from tests.servers import ROOT, GunicornServer, free_port

DEPLOY = ROOT / "deploy" / "prometheus"


def promtool(*args: str, cwd: Path = DEPLOY) -> subprocess.CompletedProcess:
    """Run promtool; CI installs Debian's prometheus package, so it must be there."""
    assert shutil.which("promtool"), "promtool is missing: apt-get install -y prometheus"
    return subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True)


@pytest.mark.parametrize(
    "args",
    [
        ("check", "config", "prometheus.yml"),
        ("check", "rules", "alerts.yml"),
        ("test", "rules", "alerts_test.yml"),
    ],
    ids=["check config", "check rules", "test rules"],
)
def test_promtool_passes(args):
    result = promtool(*args)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_quiet():
    alerts = re.findall(r"- alert: (\w+)", (DEPLOY / "alerts.yml").read_text())
    tests = (DEPLOY / "alerts_test.yml").read_text()
    assert len(alerts) == 9
    for alert in alerts:
        cases = re.findall(rf"alertname: {alert}\n\s+exp_alerts:( \[\])?\n", tests)
        assert "" in cases, f"{alert} has no test where it fires"
        assert " []" in cases, f"{alert} has no test where it stays quiet"


def test_the_rendered_config_scrapes_the_given_target_and_passes_promtool():
    with tempfile.TemporaryDirectory() as work_dir:
        folder = Path(work_dir)
        run.prepare(folder, "10.0.0.7:9200", "5s")
        text = (folder / "prometheus.yml").read_text()
        result = promtool("check", "config", "prometheus.yml", cwd=folder)
    assert '"10.0.0.7:9200"' in text and "scrape_interval: 5s" in text
    assert result.returncode == 0, result.stdout + result.stderr


def wait_for(url: str, ready, timeout_s: float = 30):
    """GET url until ready(json) is true; return that json."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            body = requests.get(url, timeout=2).json()
            if ready(body):
                return body
        except (requests.ConnectionError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} not ready within {timeout_s} s")
        time.sleep(0.5)


@pytest.mark.process
def test_prometheus_scrapes_gunicorns_metrics_port_and_loads_the_rules(server_database_url):
    assert shutil.which("prometheus"), "prometheus is missing: apt-get install -y prometheus"
    listen = f"127.0.0.1:{free_port()}"
    api = f"http://{listen}/api/v1"
    with (
        GunicornServer({"DATABASE_URL": server_database_url}) as server,
        tempfile.TemporaryDirectory(prefix="prometheus-") as work_dir,
    ):
        folder = Path(work_dir)
        run.prepare(folder, f"127.0.0.1:{server.metrics_port}", "1s")
        log = open(folder / "prometheus.log", "w")  # noqa: SIM115 (closed below)
        prometheus = subprocess.Popen(run.command(folder, listen), stdout=log, stderr=log)
        try:
            targets = wait_for(
                f"{api}/targets",
                lambda body: any(t["health"] == "up" for t in body["data"]["activeTargets"]),
            )
            query = f'{api}/query?query=db_client_connection_max{{pool_name="request"}}'
            result = wait_for(query, lambda body: body["data"]["result"])
            rules = requests.get(f"{api}/rules", timeout=5).json()
        finally:
            prometheus.terminate()
            prometheus.wait(10)
            log.close()
    assert targets["data"]["activeTargets"][0]["labels"]["job"] == "ordering-service"
    assert float(result["data"]["result"][0]["value"][1]) == 10  # One worker, 5 + 5.
    groups = {group["name"] for group in rules["data"]["groups"]}
    assert groups == {"ordering-service-records", "ordering-service-alerts"}
