"""What a new operator runs first works as README says, whatever else the machine has."""

import json
import os
import subprocess

import pytest

from deploy.ports import free_port
from tests import pg
from tests.servers import ROOT
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
    assert line.startswith("Error: cannot reach the database: connection to server at")


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
