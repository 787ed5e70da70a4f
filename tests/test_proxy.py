"""TRUSTED_PROXY_HOPS: the app believes X-Forwarded-* from that many proxies, and no one else."""

import pytest
from flask import jsonify, request

from app import create_app
from app.config import ConfigError, load_settings
from tests.conftest import TEST_SETTINGS

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
