"""What a new operator runs first works as README says, whatever else the machine has."""

import json
import os
import socket
import subprocess
import tempfile
import time

import pytest

from deploy.ports import free_port
from deploy.stack import LOCAL_REDIS
from tests import pg
from tests.servers import GUNICORN, ROOT, GunicornServer
from tests.test_stack import installed_venv_view

pytestmark = pytest.mark.process
PYTHON_REPRS = ("True", "False", "None", "['", "[]")


@pytest.fixture
def empty_database_url():
    """A database with no schema at all, dropped after the test."""
    name, url = pg.create_database("apptest_empty")
    yield url
    pg.drop_database(name)


def bin_dev_flask(tmp_path, *args: str, **variables: str | None) -> subprocess.CompletedProcess:
    """Run `bin/dev flask ARGS` as an operator would, with these variables set (None: unset)."""
    venv = tmp_path / "venv"
    if not venv.exists():
        installed_venv_view(tmp_path)
    wanted = {**os.environ, "VENV": str(venv), **variables}
    environment = {name: value for name, value in wanted.items() if value is not None}
    return subprocess.run(
        [str(ROOT / "bin" / "dev"), "flask", *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
        timeout=120,
    )


def one_line(text: str) -> str:
    """The only non-blank line of text; fails when there are more."""
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


def test_bin_dev_flask_uses_the_projects_virtualenv_whatever_is_on_path(tmp_path, database_url):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    impostor = elsewhere / "flask"
    impostor.write_text("#!/bin/sh\necho 'another flask' >&2\nexit 1\n")
    impostor.chmod(0o755)
    finished = bin_dev_flask(
        tmp_path,
        "db-info",
        "--json",
        PATH=f"{elsewhere}:{os.environ['PATH']}",
        DATABASE_URL=database_url,
        SECRET_KEY="first-hour",
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert json.loads(finished.stdout)["health"]["database"]["connected"] is True


def test_seed_on_an_unmigrated_database_says_to_run_db_upgrade(tmp_path, empty_database_url):
    finished = bin_dev_flask(tmp_path, "seed", DATABASE_URL=empty_database_url, SECRET_KEY="s")
    assert finished.returncode != 0
    assert "run flask db upgrade" in one_line(finished.stderr)
    assert finished.stdout == ""


def test_db_upgrade_with_the_database_unreachable_is_one_line(tmp_path):
    unreachable = f"postgresql://postgres@127.0.0.1:{free_port()}/app"
    finished = bin_dev_flask(tmp_path, "db", "upgrade", DATABASE_URL=unreachable, SECRET_KEY="s")
    assert finished.returncode != 0
    line = one_line(finished.stdout + finished.stderr)
    address = unreachable.split("@")[1].split("/")[0]
    assert line.startswith(f"Error: cannot reach the database at {address}: ")
    assert "Connection refused" in line


def test_an_unset_secret_key_says_so_and_how_to_make_one(tmp_path, database_url):
    environment = {"DATABASE_URL": database_url, "SECRET_KEY": None}
    finished = bin_dev_flask(tmp_path, "db-info", **environment)
    assert finished.returncode != 0
    line = one_line(finished.stderr)
    assert line.startswith("configuration error: SECRET_KEY is unset;")
    recipe = line.split("make one with ", 1)[1].removesuffix(" and export it")
    key = subprocess.run(recipe, shell=True, capture_output=True, text=True, check=True).stdout
    again = bin_dev_flask(tmp_path, "db-info", **{**environment, "SECRET_KEY": key.strip()})
    assert again.returncode == 0, again.stderr


def test_a_fresh_seed_says_what_it_added_and_a_second_that_nothing_was(
    tmp_path, server_database_url
):
    environment = {"DATABASE_URL": server_database_url, "SECRET_KEY": "s"}
    first = bin_dev_flask(tmp_path, "seed", **environment)
    second = bin_dev_flask(tmp_path, "seed", **environment)
    assert first.stdout.strip() == "seed: added 3 services and 2 benefits", first.stderr
    assert second.stdout.strip() == (
        "seed: nothing added; the demo services and benefits are already there"
    )


def test_db_info_text_reads_as_words_not_python(tmp_path, database_url):
    finished = bin_dev_flask(tmp_path, "db-info", DATABASE_URL=database_url, SECRET_KEY="s")
    assert finished.returncode == 0, finished.stderr
    for shown in ("database.connected: yes", "DB_CONNECTION_BUDGET: unset", "errors: none"):
        assert shown in finished.stdout
    values = [line.split(": ", 1)[-1] for line in finished.stdout.splitlines()]
    assert not [value for value in values if value.startswith(PYTHON_REPRS)], finished.stdout


def gunicorn_run(server: GunicornServer, timeout_s: float = 30) -> tuple[int, str]:
    """Run server's gunicorn command to its end (it should refuse); its code and output."""
    finished = subprocess.run(
        server.command, cwd=ROOT, env=server.env, capture_output=True, text=True, timeout=timeout_s
    )
    return finished.returncode, finished.stdout + finished.stderr


def json_lines(output: str) -> list[dict]:
    """Every line of a gunicorn log as the JSON object it must be."""
    return [json.loads(line) for line in output.splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("variable", "refusal"),
    [
        ("PORT", "PORT {port}: 127.0.0.1:{port} is already in use; stop what holds it"),
        (
            "METRICS_PORT",
            "METRICS_PORT {port} on 127.0.0.1: Address already in use;"
            " set METRICS_PORT to a free port",
        ),
    ],
)
def test_a_taken_port_is_named_once_in_json_before_gunicorn_listens(
    server_database_url, variable, refusal
):
    server = GunicornServer({"DATABASE_URL": server_database_url})
    port = int(server.env[variable])
    with socket.create_server(("127.0.0.1", port)):
        code, output = gunicorn_run(server)
    assert code != 0
    errors = [line["message"] for line in json_lines(output) if line["level"] == "ERROR"]
    assert errors == ["refusing to start: " + refusal.format(port=port)]
    assert "Connection in use" not in output and "Listening at" not in output


@pytest.mark.parametrize(("storage", "warned"), [("memory://", True), (LOCAL_REDIS, False)])
def test_start_up_says_when_each_worker_counts_rate_limits_alone(
    server_database_url, storage, warned
):
    env = {"DATABASE_URL": server_database_url, "WEB_CONCURRENCY": "2"}
    with GunicornServer({**env, "RATELIMIT_STORAGE_URI": storage}) as server:
        output = server.output()
    warning = "each of the 2 workers counts alone and every limit is 2 times looser"
    assert (warning in output) is warned, output
    if warned:
        assert "2 × 5 = 10 wrong passwords for one account from one address" in output


def listening_address(env: dict[str, str], *command: str, timeout_s: float = 60) -> str:
    """Start command (gunicorn, or bin/dev serve), return where it says it listens, stop it."""
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            return wait_for_listening_line(process, log, timeout_s)
        finally:
            process.terminate()
            process.wait(40)


def wait_for_listening_line(process: subprocess.Popen, log, timeout_s: float) -> str:
    """The address in gunicorn's "Listening at" line of log, once it is there."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        log.seek(0)
        for line in log.read().splitlines():
            if "Listening at: " in line:
                return line.split("Listening at: ", 1)[1].split(" ", 1)[0]
        time.sleep(0.2)
    log.seek(0)
    raise AssertionError(log.read()[-3000:])


@pytest.mark.parametrize(
    ("hops", "host"),
    [("0", "0.0.0.0"), ("1", "127.0.0.1")],
)
def test_gunicorn_listens_on_loopback_only_when_it_trusts_a_proxy(server_database_url, hops, host):
    server = GunicornServer({"DATABASE_URL": server_database_url, "TRUSTED_PROXY_HOPS": hops})
    address = listening_address(server.env, GUNICORN, "-c", "gunicorn.conf.py")
    assert address == f"http://{host}:{server.port}"


def test_bin_dev_serve_listens_on_loopback_only(tmp_path, server_database_url):
    port = free_port()
    env = {
        **os.environ,
        "VENV": str(installed_venv_view(tmp_path)),
        "DATABASE_URL": server_database_url,
        "SECRET_KEY": "first-hour",
        "PORT": str(port),
        "METRICS_PORT": str(free_port()),
    }
    serve = str(ROOT / "bin" / "dev")
    assert listening_address(env, serve, "serve") == f"http://127.0.0.1:{port}"


def test_sqlite_counts_statements_misses_no_server_limit_and_stops_without_pool_notes(tmp_path):
    database = f"sqlite:///{tmp_path / 'app.sqlite'}"
    migrated = bin_dev_flask(tmp_path, "db", "upgrade", DATABASE_URL=database, SECRET_KEY="s")
    assert migrated.returncode == 0, migrated.stderr
    with GunicornServer({"DATABASE_URL": database, "WEB_CONCURRENCY": "2"}) as server:
        assert server.get("/api/services").status_code == 200
        server.stop()
        output = server.output()
    access = [line for line in json_lines(output) if line.get("route") == "/api/services"]
    assert access and access[0]["db_queries"] >= 1
    assert "Current Overflow" not in output and "Pool recreating" not in output
    assert "server limits not checked" not in output, "SQLite has none to miss"
