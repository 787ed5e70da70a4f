"""Requests only a real HTTP server sees: chunked bodies and raw paths, through gunicorn."""

import http.client
import json
import socket
import time

import pytest

from app.api.body import BODY_LIMITS
from tests.servers import GunicornServer

pytestmark = pytest.mark.process

MIB = 1024 * 1024
# What a proxy's first writes of a large body put on the wire before the server answers.
FIRST_PART = 128 * 1024


@pytest.fixture(scope="module")
def server(server_database_url):
    """One gunicorn worker on the module's database."""
    with GunicornServer({"DATABASE_URL": server_database_url}) as server:
        yield server


@pytest.fixture(scope="module")
def proxied_server(server_database_url):
    """One gunicorn worker set up to sit behind one proxy (TRUSTED_PROXY_HOPS=1), as nginx's."""
    env = {"DATABASE_URL": server_database_url, "TRUSTED_PROXY_HOPS": "1"}
    with GunicornServer(env) as server:
        yield server


def send(server, method: str, path: str, body=None, headers=None, chunked=False):
    """One request on a fresh connection; the status, headers and body of the answer."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request(method, path, body, headers or {}, encode_chunked=chunked)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def chunked_login(server, padding: int) -> tuple[int, dict, bytes]:
    """A sign-in whose JSON body, padded with spaces, is sent chunked (no Content-Length)."""
    body = json.dumps({"email": "nobody@example.com", "password": "whatever it is"})
    chunks = [body.encode(), *([b" " * 65536] * (padding // 65536)), b" " * (padding % 65536)]
    headers = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    return send(server, "POST", "/api/auth/login", iter(chunks), headers, chunked=True)


def error_code(body: bytes) -> str:
    """The code of a JSON error body."""
    return json.loads(body)["error"]["code"]


def test_a_chunked_body_over_the_limit_is_413_not_cut_short(server):
    status, _, body = chunked_login(server, 2 * MIB)
    assert (status, error_code(body)) == (413, "request_entity_too_large")


def test_a_chunked_body_within_the_limit_is_read_whole(server):
    # Sign-in takes 8 KiB (app/api/body.py): a body just within it is read and checked.
    status, _, body = chunked_login(server, BODY_LIMITS["auth"] - 1000)
    assert (status, error_code(body)) == (401, "unauthorized")


def test_a_chunked_body_over_its_routes_limit_is_413(server):
    status, _, body = chunked_login(server, BODY_LIMITS["auth"] + 1000)
    assert (status, error_code(body)) == (413, "request_entity_too_large")


def test_a_chunked_body_with_broken_framing_is_400(server):
    headers = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    status, _, body = send(server, "POST", "/api/auth/login", b"zz\r\n{}\r\n0\r\n\r\n", headers)
    assert (status, error_code(body)) == (400, "bad_request")


@pytest.mark.parametrize("path", ["//api//services", "/api//services", "/api/services//1"])
def test_doubled_slashes_answer_a_json_404_not_an_html_redirect(server, path):
    status, headers, body = send(server, "GET", path)
    assert status == 404
    assert headers["Content-Type"] == "application/json"
    assert error_code(body) == "not_found"


def post_in_two_parts(server, path: str, body: bytes) -> bytes:
    """POST a JSON body as nginx does a large one it buffered; the raw answer, read to EOF.

    The first part goes with the head, the rest once the server could have answered: a
    proxy writing a large body is still writing then. Raises BrokenPipeError (or
    ConnectionResetError) when the server closed with part of the body unread: the kernel
    then resets the connection, and nginx answers 502 instead of the server's answer.
    """
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    head += f"Content-Length: {len(body)}\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head.encode() + body[:FIRST_PART])
        time.sleep(0.3)
        sock.sendall(body[FIRST_PART:])
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/services", b"401"),  # No token: refused before the body is read.
        ("/api/auth/login", b"413"),  # Over sign-in's 8 KiB: refused unread.
    ],
    ids=["unauthorized", "over-the-routes-limit"],
)
def test_an_answer_given_before_the_body_is_read_reaches_a_proxy_still_sending_it(
    proxied_server, path, status
):
    body = b'{"name": "x"}' + b" " * 900_000
    assert post_in_two_parts(proxied_server, path, body).split(b" ", 2)[1] == status


def test_without_a_proxy_a_stalled_body_answered_early_does_not_hold_the_worker(server):
    # Content-Length says 500 kB, 1 kB comes, then nothing: the answer (401) needs none of it.
    head = b"POST /api/services HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as stalled:
        stalled.sendall(head + b"Content-Length: 500000\r\n\r\n" + b" " * 1024)
        answer = stalled.recv(65536)
        started = time.monotonic()
        status, _, _ = send(server, "GET", "/api/health/live")  # The only worker is free.
        waited = time.monotonic() - started
    assert answer.split(b" ", 2)[1] == b"401"
    assert status == 200
    assert waited < 5, "gunicorn lingers at most 2 s for the rest, then closes"
