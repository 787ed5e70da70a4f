"""Real gunicorn and nginx servers for tests, on free loopback ports."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter

from deploy.ports import free_port
from deploy.stack import nginx_part

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))


def unique_application_name() -> str:
    """An application_name only this server's connections carry."""
    return f"t{uuid.uuid4().hex[:10]}"


def overlapping_env(database_url: str) -> dict[str, str]:
    """Two workers of four threads with pools of two plus two: requests really overlap."""
    return {
        "DATABASE_URL": database_url,
        "WEB_CONCURRENCY": "2",
        "GUNICORN_THREADS": "4",
        "DB_POOL_SIZE": "2",
        "DB_MAX_OVERFLOW": "2",
    }


class GunicornServer:
    """One gunicorn master with its workers, its log kept in a file."""

    def __init__(self, env: dict[str, str], args: tuple[str, ...] = ()):
        self.port = free_port()
        self.metrics_port = free_port()
        self.application_name = env.get("DB_APPLICATION_NAME") or unique_application_name()
        self.env = {
            **os.environ,
            "SECRET_KEY": "test-secret",
            "WEB_CONCURRENCY": "1",
            "METRICS_PORT": str(self.metrics_port),
            **env,
            "PORT": str(self.port),
            "DB_APPLICATION_NAME": self.application_name,
        }
        self.args = args
        self.log = tempfile.NamedTemporaryFile("w+", prefix="gunicorn-", suffix=".log")  # noqa: SIM115 (closed in __exit__)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """The base URL of the server."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def command(self) -> list[str]:
        """The gunicorn command line, bound to this server's port."""
        return [GUNICORN, "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{self.port}", *self.args]

    def start(self, timeout_s: float = 20) -> "GunicornServer":
        """Start the master and wait until a worker answers."""
        self.process = subprocess.Popen(
            self.command, cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited {self.process.returncode}:\n{self.output()}")
            if self.answers():
                return self
            time.sleep(0.1)
        output = self.output()
        self.stop()  # No caller's __exit__ runs for a start that failed: stop it here.
        raise RuntimeError(f"gunicorn did not answer within {timeout_s} s:\n{output}")

    def answers(self) -> bool:
        """Whether /api/health/live answers 200."""
        try:
            return requests.get(self.url + "/api/health/live", timeout=1).status_code == 200
        except (requests.ConnectionError, requests.Timeout):  # a worker still booting
            return False

    def get(self, path: str, **kwargs) -> requests.Response:
        """GET a path of the server."""
        kwargs.setdefault("timeout", 30)
        return requests.get(self.url + path, **kwargs)

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 40) -> int:
        """Signal the master and wait for it to exit; return its exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise

    def metrics(self) -> str:
        """The Prometheus exposition on METRICS_PORT, summed over the workers."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        return requests.get(url, timeout=10).text

    def output(self) -> str:
        """Everything the master and workers logged so far."""
        self.log.flush()
        return Path(self.log.name).read_text()

    def __enter__(self) -> "GunicornServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        try:
            self.stop()
        finally:
            if self.process and self.process.poll() is None:
                self.process.kill()
            self.log.close()


def run_gunicorn_expecting_exit(env: dict[str, str], timeout_s: float = 20):
    """Run gunicorn that should refuse to start; return (exit code, output)."""
    server = GunicornServer(env)
    server.log.close()
    result = subprocess.run(
        server.command, cwd=ROOT, env=server.env, capture_output=True, text=True, timeout=timeout_s
    )
    return result.returncode, result.stdout + result.stderr


class NginxServer:
    """The shipped deploy/nginx.conf on a free loopback port, in front of upstream."""

    def __init__(self, upstream: str, origins: Iterable[str] = ()):
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="nginx-"))
        self.part = nginx_part(self.folder, "127.0.0.1", self.port, upstream, origins)

    @property
    def url(self) -> str:
        """The base URL clients use."""
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, **kwargs) -> requests.Response:
        """GET a path through nginx."""
        kwargs.setdefault("timeout", 30)
        return requests.get(self.url + path, **kwargs)

    def error_log(self) -> str:
        """What nginx logged about refused and failed requests."""
        return (self.folder / "error.log").read_text()

    def __enter__(self) -> "NginxServer":
        try:
            self.part.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.part.stop()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


class SourceAddress(HTTPAdapter):
    """A transport whose connections leave from one local address (requests' adapter hook)."""

    def __init__(self, address: str):
        self.address = address
        super().__init__()

    def init_poolmanager(self, connections, maxsize, block=False, **pool_kwargs):
        """Bind every connection of the pool to the address."""
        pool_kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)


def client_from(address: str) -> requests.Session:
    """A requests session whose connections come from address."""
    session = requests.Session()
    session.mount("http://", SourceAddress(address))
    return session
