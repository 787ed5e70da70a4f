"""No connection is held while a request does something else: hashing, or waiting for a body."""

import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests import pg
from tests.conftest import PASSWORD
from tests.probes import BackgroundLoop
from tests.servers import GunicornServer, client_from

pytestmark = pytest.mark.process

SIGN_INS = STALLED_BODIES = 20
# Longer than any statement of a request, far shorter than a password hash or a stalled body.
LONGEST_IDLE_IN_TRANSACTION_S = 0.1


class IdleInTransactionSampler(BackgroundLoop):
    """The longest any backend of ours has sat idle inside a transaction, sampled often."""

    interval_s = 0.02

    def __init__(self, application_name: str):
        self.application_name = application_name
        self.longest_s = 0.0
        self.samples = 0

    def tick(self) -> None:
        """Take one sample of how long each idle-in-transaction backend has been so."""
        rows = pg.admin_execute(
            "SELECT coalesce(max(extract(epoch FROM clock_timestamp() - state_change)), 0)"
            " FROM pg_stat_activity WHERE application_name = %s"
            " AND state = 'idle in transaction'",
            (self.application_name,),
        )
        self.longest_s = max(self.longest_s, float(rows[0][0]))
        self.samples += 1


def stall_a_body(server: GunicornServer, token: str) -> socket.socket:
    """Send a signed-in POST that promises 1000 bytes of body and sends ten."""
    sock = socket.create_connection(("127.0.0.1", server.port))
    head = (
        "POST /api/orders HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: 1000\r\n\r\n"
    )
    sock.sendall(head.encode() + b'{"service_')
    return sock


def sign_in(server: GunicornServer, email: str) -> int:
    """Log in once; return the status."""
    body = {"email": email, "password": PASSWORD}
    return requests.post(server.url + "/api/auth/login", json=body, timeout=30).status_code


def test_sign_ins_and_stalled_bodies_hold_no_transaction_open(server_database_url):
    env = {
        "DATABASE_URL": server_database_url,
        "WEB_CONCURRENCY": "2",
        "GUNICORN_THREADS": "24",
        "DB_POOL_SIZE": "4",
        "DB_MAX_OVERFLOW": "0",
        "RATELIMIT_STORAGE_URI": "memory://",
    }
    with GunicornServer(env) as server:
        emails = [f"holder{n}@example.com" for n in range(SIGN_INS)]
        for number, email in enumerate(emails):
            # From addresses of their own: sign-ups are limited per client.
            client = client_from(f"127.0.1.{number + 1}")
            body = {"email": email, "password": PASSWORD, "name": "Holder"}
            assert client.post(server.url + "/api/auth/register", json=body).status_code == 201
        token = requests.post(
            server.url + "/api/auth/login", json={"email": emails[0], "password": PASSWORD}
        ).json()["token"]
        with IdleInTransactionSampler(server.application_name) as sampler:
            stalled = [stall_a_body(server, token) for _ in range(STALLED_BODIES)]
            with ThreadPoolExecutor(SIGN_INS) as pool:
                statuses = list(pool.map(lambda email: sign_in(server, email), emails))
            time.sleep(1)  # The stalled bodies keep waiting meanwhile.
            for sock in stalled:
                sock.close()
    print(f"longest idle in transaction {sampler.longest_s:.3f} s over {sampler.samples} samples")
    assert statuses == [200] * SIGN_INS
    assert sampler.samples > 20
    assert sampler.longest_s < LONGEST_IDLE_IN_TRANSACTION_S
