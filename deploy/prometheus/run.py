"""Run Prometheus (Debian's package) in the foreground, scraping one service, from a temp folder.

    python deploy/prometheus/run.py --target 127.0.0.1:9100 --listen 127.0.0.1:9090

Renders prometheus.yml for the target (the service's METRICS_BIND:METRICS_PORT) next to a
copy of alerts.yml in a temporary folder that also holds the data, runs Prometheus there
until it exits or Ctrl-C, and removes the folder. `bin/dev stack` can call render() and
command() itself, or run this file.
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_TARGET = "127.0.0.1:9100"
DEFAULT_SCRAPE_INTERVAL = "15s"


def render(target: str, scrape_interval: str = DEFAULT_SCRAPE_INTERVAL) -> str:
    """prometheus.yml scraping target (host:port) every scrape_interval."""
    text = (HERE / "prometheus.yml").read_text()
    quoted = f'"{DEFAULT_TARGET}"'
    interval = f"scrape_interval: {DEFAULT_SCRAPE_INTERVAL}"
    if text.count(quoted) != 1 or text.count(interval) != 1:
        raise ValueError("prometheus.yml no longer names one target and one scrape interval")
    text = text.replace(quoted, f'"{target}"')
    return text.replace(interval, f"scrape_interval: {scrape_interval}")


def prepare(folder: Path, target: str, scrape_interval: str = DEFAULT_SCRAPE_INTERVAL) -> Path:
    """Write the rendered prometheus.yml and alerts.yml into folder; return the config's path."""
    config = folder / "prometheus.yml"
    config.write_text(render(target, scrape_interval))
    shutil.copy(HERE / "alerts.yml", folder / "alerts.yml")
    return config


def command(folder: Path, listen: str) -> list[str]:
    """The prometheus command line for a folder made by prepare(), serving on listen."""
    return [
        "prometheus",
        f"--config.file={folder / 'prometheus.yml'}",
        f"--storage.tsdb.path={folder / 'data'}",
        f"--web.listen-address={listen}",
        # Debian's defaults point at /usr/share; the graph page needs none of them.
        f"--web.console.templates={folder}",
        f"--web.console.libraries={folder}",
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default=DEFAULT_TARGET, help="host:port of METRICS_PORT")
    parser.add_argument("--listen", default="127.0.0.1:9090", help="where Prometheus listens")
    parser.add_argument("--scrape-interval", default=DEFAULT_SCRAPE_INTERVAL)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run Prometheus until it exits; Ctrl-C stops it and cleans up."""
    args = parse_args(argv)
    if shutil.which("prometheus") is None:
        print("prometheus is not installed: apt-get install -y prometheus", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="prometheus-") as work_dir:
        folder = Path(work_dir)
        prepare(folder, args.target, args.scrape_interval)
        process = subprocess.Popen(command(folder, args.listen))
        try:
            return process.wait()
        except KeyboardInterrupt:
            process.terminate()
            return process.wait()


if __name__ == "__main__":
    raise SystemExit(main())
