"""Start and stop gunicorn the way production does, and read its workers' memory."""

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from deploy.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
REAL_CONF = ROOT / "gunicorn.conf.py"
VARIANT_CONF = ROOT / "bench" / "variant_gunicorn.py"
READY_TIMEOUT_S = 30
STOP_TIMEOUT_S = 40
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class ServerSpec:
    """What to serve and with which environment: the app, the floor or the "before" app."""

    label: str
    variant: str | None
    environment: dict[str, str]

    @property
    def conf(self) -> Path:
        """The gunicorn config file this server starts with."""
        return REAL_CONF if self.variant is None else VARIANT_CONF


@dataclass
class Server:
    """A running gunicorn master on a loopback port, with its log lines kept."""

    spec: ServerSpec
    port: int
    process: subprocess.Popen
    log_lines: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        """Where wrk sends its requests."""
        return f"http://127.0.0.1:{self.port}"

    def worker_pids(self) -> list[int]:
        """The master's worker processes."""
        return children_of(self.process.pid)

    def workers_cpu_s(self) -> float:
        """CPU seconds (user and system) the running workers have spent so far."""
        return sum(cpu_s(pid) or 0.0 for pid in self.worker_pids())

    def stop(self) -> int:
        """SIGTERM the master and wait for it, as a deploy would; return its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_server(spec: ServerSpec) -> Server:
    """Start gunicorn for spec and wait until it answers."""
    port = free_port()
    environment = {**os.environ, **spec.environment, "PORT": str(port), "PYTHONPATH": str(ROOT)}
    environment.setdefault("METRICS_PORT", str(free_port()))  # The master's metrics listener.
    if spec.variant:
        environment["BENCH_VARIANT"] = spec.variant
    command = [sys.executable, "-m", "gunicorn", "-c", str(spec.conf)]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    server = Server(spec, port, process)
    threading.Thread(target=keep_log, args=(server,), daemon=True).start()
    wait_until_ready(server)
    return server


def keep_log(server: Server) -> None:
    """Drain gunicorn's output, so a full pipe never blocks it."""
    for line in server.process.stdout:
        server.log_lines.append(line.rstrip("\n"))


def wait_until_ready(server: Server) -> None:
    """Poll /api/health/live until every worker could have booted, or fail with the log."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        if answers(server.base_url + "/api/health/live") and booted(server):
            return
        time.sleep(0.1)
    server.stop()
    tail = "\n".join(server.log_lines[-20:])
    raise RuntimeError(f"{server.spec.label}: gunicorn did not become ready:\n{tail}")


def booted(server: Server) -> bool:
    """Whether every worker the environment asks for is running."""
    wanted = int(server.spec.environment.get("WEB_CONCURRENCY", "2"))
    return len(server.worker_pids()) >= wanted


def answers(url: str) -> bool:
    """Whether url answers 200 right now."""
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def children_of(pid: int) -> list[int]:
    """Pids whose parent is pid, read from /proc."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and parent_pid(entry) == pid:
            children.append(int(entry.name))
    return children


def stat_fields(proc_dir: Path) -> list[str] | None:
    """The fields of one /proc entry's stat after the command name (state first), or None."""
    try:
        stat = (proc_dir / "stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: fields start after the last ")".
    return stat.rsplit(")", 1)[1].split()


def parent_pid(proc_dir: Path) -> int | None:
    """The parent pid of one /proc entry, or None when it is gone."""
    fields = stat_fields(proc_dir)
    return None if fields is None else int(fields[1])


def cpu_s(pid: int) -> float | None:
    """User and system CPU seconds of a process, or None when it is gone."""
    fields = stat_fields(Path(f"/proc/{pid}"))
    if fields is None:
        return None
    # utime and stime are stat's fields 14 and 15 (proc(5)); state, field 3, is fields[0].
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mib(pid: int) -> float | None:
    """Resident memory of a process in MiB, or None when it is gone."""
    try:
        resident_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return resident_pages * PAGE_SIZE / 2**20
