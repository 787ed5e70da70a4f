"""TRUSTED_PROXY_HOPS: the app believes X-Forwarded-* from that many proxies, and no one else."""

import pytest
from flask import jsonify, request

from app import create_app
from app.api.auth import LOGINS_PER_CLIENT
from app.config import ConfigError, load_settings
from tests.conftest import TEST_SETTINGS
from tests.servers import GunicornServer, NginxServer, client_from

FORGED = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}


def seen_client(database_url: str, hops: int, headers: dict[str, str]) -> dict[str, str]:
    """The address and scheme a view sees for a request from 10.1.1.1 with headers."""
    app = create_app({**TEST_SETTINGS, "DATABASE_URL": database_url, "TRUSTED_PROXY_HOPS": hops})
    app.add_url_rule("/test/client", "client", lambda: jsonify(request.remote_addr, request.scheme))
    response = app.test_client().get(
        "/test/client", headers=headers, environ_base={"REMOTE_ADDR": "10.1.1.1"}
    )
    return response.get_json()


def test_without_a_trusted_proxy_forged_forwarding_headers_change_nothing(database_url):
    assert seen_client(database_url, 0, FORGED) == ["10.1.1.1", "http"]


def test_one_trusted_hop_believes_the_proxy_and_no_further(database_url):
    assert seen_client(database_url, 1, FORGED) == ["203.0.113.9", "https"]
    chain = {"X-Forwarded-For": "198.51.100.7, 203.0.113.9"}  # client-written, then the proxy's
    assert seen_client(database_url, 1, chain)[0] == "203.0.113.9"


@pytest.mark.parametrize("value", ["-1", "11", "one"])
def test_trusted_proxy_hops_out_of_range_stops_start_up(value):
    with pytest.raises(ConfigError, match="TRUSTED_PROXY_HOPS"):
        load_settings({"TRUSTED_PROXY_HOPS": value})


def failed_login(session, url: str, number: int, headers=None) -> int:
    """One sign-in with a new email each time, so only the per-client limit counts it."""
    body = {"email": f"nobody{number}@example.com", "password": "wrong"}
    return session.post(url + "/api/auth/login", json=body, headers=headers, timeout=30).status_code


@pytest.mark.process
def test_behind_nginx_limits_key_on_the_real_client_and_forging_does_not_help(
    server_database_url,
):
    # One worker, so its in-memory counts are the only counts.
    env = {"DATABASE_URL": server_database_url, "TRUSTED_PROXY_HOPS": "1"}
    allowed = LOGINS_PER_CLIENT.allowance.amount
    with GunicornServer(env) as gunicorn, NginxServer(f"127.0.0.1:{gunicorn.port}") as nginx:
        guesser, neighbour = client_from("127.0.0.40"), client_from("127.0.0.41")
        statuses = [failed_login(guesser, nginx.url, n) for n in range(allowed)]
        assert statuses == [401] * allowed
        assert failed_login(guesser, nginx.url, allowed) == 429
        # The limit is the guesser's, not everyone's behind the proxy.
        assert failed_login(neighbour, nginx.url, 0) == 401
        # Claiming another address does not escape it, nor put the neighbour under it.
        assert failed_login(guesser, nginx.url, 1, {"X-Forwarded-For": "127.0.0.99"}) == 429
        assert failed_login(neighbour, nginx.url, 1, {"X-Forwarded-For": "127.0.0.40"}) == 401
