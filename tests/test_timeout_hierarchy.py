"""The timeouts nest: nginx > gunicorn's worker timeout > REQUEST_TIMEOUT > the database's."""

import configparser
import re

import pytest

from app.config import load_settings
from app.database.timeout_hierarchy import deadline_errors, deadline_warnings
from deploy.pgbouncer import SHIPPED_INI
from tests.servers import ROOT, GunicornServer, run_gunicorn_expecting_exit


def shipped_seconds(path: str, pattern: str) -> float:
    """The number a shipped file's line matching pattern sets."""
    match = re.search(pattern, (ROOT / path).read_text(), re.MULTILINE)
    assert match, pattern
    return float(match.group(1))


def test_the_shipped_configurations_nest_around_the_default_deadline():
    settings = load_settings({})
    nginx_read_s = shipped_seconds("deploy/nginx.conf", r"^\s*proxy_read_timeout (\d+)s;")
    worker_s = shipped_seconds("gunicorn.conf.py", r"^timeout = (\d+)")
    graceful_s = shipped_seconds("gunicorn.conf.py", r"^graceful_timeout = (\d+)")
    config = configparser.ConfigParser(interpolation=None)
    config.read(SHIPPED_INI)
    query_wait_s = float(config["pgbouncer"]["query_wait_timeout"])

    assert nginx_read_s > worker_s
    assert deadline_errors(settings, worker_s) == []
    assert deadline_warnings(settings, graceful_s) == []
    assert 0 < query_wait_s <= settings.db_pool_timeout <= settings.request_timeout


@pytest.mark.process
def test_a_deadline_gunicorn_would_kill_first_is_refused_with_its_numbers(server_database_url):
    env = {"DATABASE_URL": server_database_url, "REQUEST_TIMEOUT": "59"}
    code, output = run_gunicorn_expecting_exit(env)
    assert code != 0
    assert "REQUEST_TIMEOUT 59 s + 1.5 s to answer = 60.5 s" in output
    assert "worker timeout 60 s" in output
    assert "Booting worker" not in output


@pytest.mark.process
def test_layers_that_outlast_the_deadline_are_named_at_start_up(server_database_url):
    env = {"DATABASE_URL": server_database_url, "REQUEST_TIMEOUT": "4", "DB_POOL_TIMEOUT": "5"}
    with GunicornServer(env) as server:
        output = server.output()
    assert "DB_STATEMENT_TIMEOUT 15 s > REQUEST_TIMEOUT 4 s" in output
    assert "DB_POOL_TIMEOUT 5 s > REQUEST_TIMEOUT 4 s" in output
    assert "DB_CONNECT_TIMEOUT 5 s > REQUEST_TIMEOUT 4 s" in output
