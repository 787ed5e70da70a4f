"""The shipped nginx in front of real gunicorn: JSON errors, limits per client, slow clients.

Clients bind distinct loopback addresses (127.0.0.2, 127.0.0.3 …), which nginx sees as
distinct clients, as it would see distinct hosts.
"""

import contextlib
import json
import socket
import threading
import time
from pathlib import Path

import pytest
import requests

from deploy.nginx import PLACEHOLDER, TEMPLATE, render
from tests.servers import GunicornServer, NginxServer, client_from, free_port

pytestmark = pytest.mark.process

ONE_MIB = 1024 * 1024
# deploy/nginx.conf's limits, as a client meets them.
CONNECTIONS_PER_CLIENT = 32
REQUEST_BURST = 100
# A flood stops at its first refusal, or here: 20 s of requests at the 50/s rate.
MAX_FLOOD = 1_000
HEADER_TIMEOUT_S = 10
STALLED_PATH = "/api/auth/login?stalled"


@pytest.fixture(scope="module")
def gunicorn(server_database_url):
    """Two sync workers behind one proxy: a worker held by a slow client would show."""
    env = {"DATABASE_URL": server_database_url, "WEB_CONCURRENCY": "2", "TRUSTED_PROXY_HOPS": "1"}
    with GunicornServer(env) as server:
        yield server


@pytest.fixture(scope="module")
def proxy(gunicorn):
    """The shipped nginx in front of gunicorn."""
    with NginxServer(f"127.0.0.1:{gunicorn.port}") as nginx:
        yield nginx


def raw_request(port: int, data: bytes, source: str = "127.0.0.1", timeout_s: float = 5) -> bytes:
    """Send bytes as they are and return everything the server answers before closing."""
    with socket.create_connection(("127.0.0.1", port), source_address=(source, 0)) as sock:
        sock.settimeout(timeout_s)
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def parse(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lowercase names) and body of one raw HTTP answer."""
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), {k.lower(): v for k, v in headers.items()}, body


def assert_json_error(headers: dict[str, str], body: bytes, code: str) -> None:
    """The API's error shape, typed as JSON, with the request id its header carries."""
    assert headers["content-type"] == "application/json", body
    error = json.loads(body)["error"]
    assert error["code"] == code
    assert error["message"]
    assert error.get("request_id", headers["x-request-id"]) == headers["x-request-id"]


def request_line(target: bytes) -> bytes:
    """A GET of target with nothing else to it."""
    return b"GET " + target + b" HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n"


def url_of_length(length: int) -> bytes:
    """A query URL whose request line (without CRLF) is exactly length bytes."""
    start = b"/api/services?q="
    return start + b"a" * (length - len(b"GET  HTTP/1.1") - len(start))


NGINX_ERRORS = {
    "bad request line": (b"GARBAGE\r\n\r\n", 400, "bad_request"),
    "line folding": (
        b"GET /api/health/live HTTP/1.1\r\nHost: a\r\nX-A: a\r\n b\r\n\r\n",
        400,
        "bad_request",
    ),
    "URL beyond ASCII": (request_line(b"/api/services?q=caf\xc3\xa9"), 400, "bad_request"),
    "URL over 4 KiB": (request_line(url_of_length(4095)), 414, "request_uri_too_large"),
    "header line over 4 KiB": (
        b"GET /api/health/live HTTP/1.1\r\nHost: a\r\nX-Big: " + b"b" * 5000 + b"\r\n\r\n",
        431,
        "request_header_fields_too_large",
    ),
    "unknown transfer coding": (
        b"POST /api/auth/login HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
        501,
        "not_implemented",
    ),
    "HTTP/2 request line": (
        b"GET /api/health HTTP/2.0\r\nHost: a\r\n\r\n",
        505,
        "http_version_not_supported",
    ),
    "metrics": (request_line(b"/metrics"), 404, "not_found"),
    "metrics, encoded": (request_line(b"/%6detrics"), 404, "not_found"),
    "metrics, dot segments": (request_line(b"/api/../metrics"), 404, "not_found"),
    "metrics, double slash": (request_line(b"//metrics"), 404, "not_found"),
    "the bare API prefix": (request_line(b"/api"), 404, "not_found"),
    "TRACE": (
        b"TRACE /api/health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        405,
        "method_not_allowed",
    ),
}


@pytest.mark.parametrize("name", NGINX_ERRORS)
def test_every_error_nginx_raises_is_json(proxy, name):
    data, expected_status, code = NGINX_ERRORS[name]
    status, headers, body = parse(raw_request(proxy.port, data))
    assert status == expected_status
    assert_json_error(headers, body, code)


def test_the_longest_url_nginx_passes_reaches_the_app_and_gets_its_json(proxy):
    status, _, body = parse(raw_request(proxy.port, request_line(url_of_length(4094))))
    assert status == 422  # The app's own answer: q is longer than it accepts.
    assert json.loads(body)["error"]["code"] == "validation_error"


def test_many_header_lines_get_json_from_nginx_or_the_app(proxy):
    for count in (150, 990, 2000):
        lines = b"X:\r\n" * count
        data = (
            b"GET /api/health/live HTTP/1.1\r\nHost: a\r\nConnection: close\r\n" + lines + b"\r\n"
        )
        status, headers, body = parse(raw_request(proxy.port, data))
        assert headers["content-type"] == "application/json", (count, status, body[:80])


def test_a_body_over_one_mib_is_refused_before_the_app(proxy, gunicorn):
    response = requests.post(
        proxy.url + "/api/auth/register", data=b" " * (ONE_MIB + 1), timeout=10,
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_entity_too_large"
    assert "/api/auth/register" not in gunicorn.output()


def test_a_large_body_within_the_limit_is_buffered_and_passed_on(proxy):
    # /api/services takes bodies up to 1 MiB (sign-in takes 8 KiB: the app would refuse it).
    body = json.dumps({"name": "x", "price_cents": 1}) + " " * 900_000
    response = requests.post(
        proxy.url + "/api/services", data=body, timeout=10,
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert response.status_code == 401  # The app's answer (no token), not nginx's 413.
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_upstream_down_is_a_json_502_with_retry_after():
    with NginxServer(f"127.0.0.1:{free_port()}") as nginx:
        response = nginx.get("/api/health")
    assert response.status_code == 502
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "bad_gateway"
    assert response.headers["Retry-After"] == "1"


def test_upstream_that_never_accepts_is_a_json_504():
    # A listener whose backlog is full: a new connection to it never completes.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        fillers = [socket.socket() for _ in range(3)]
        for filler in fillers:
            filler.setblocking(False)
            filler.connect_ex(listener.getsockname())
        try:
            with NginxServer(address) as nginx:
                started = time.monotonic()
                response = nginx.get("/api/health")
                waited_s = time.monotonic() - started
        finally:
            for filler in fillers:
                filler.close()
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "gateway_timeout"
    assert waited_s < 5  # proxy_connect_timeout, not a client's patience


def test_one_address_flooding_requests_gets_json_429s_and_others_do_not(proxy):
    flooder, neighbour = client_from("127.0.0.20"), client_from("127.0.0.21")
    # Until the first refusal: once the burst is spent, a request sent sooner than the rate
    # allows is refused, so how soon depends on how fast this machine sends them.
    responses = [flooder.get(proxy.url + "/api/health/live")]
    while responses[-1].status_code == 200 and len(responses) < MAX_FLOOD:
        responses.append(flooder.get(proxy.url + "/api/health/live"))
    *served, refused = responses
    assert len(served) >= REQUEST_BURST
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "too_many_requests"
    assert refused.headers["Retry-After"] == "1"
    assert neighbour.get(proxy.url + "/api/health/live").status_code == 200


def test_refused_requests_with_long_urls_are_logged_cut_short(proxy):
    flooder = client_from("127.0.0.22")
    long_path = "/api/health/live?" + "x" * 3800
    responses = [flooder.get(proxy.url + long_path)]
    while responses[-1].status_code == 200 and len(responses) < MAX_FLOOD:
        responses.append(flooder.get(proxy.url + long_path))
    assert responses[-1].status_code == 429
    time.sleep(0.2)  # nginx writes its logs a moment after it answers
    logs = [(proxy.folder / name).read_text() for name in ("access.log", "error.log")]
    lines = [line for log in logs for line in log.splitlines() if "127.0.0.22" in line]
    assert any(" 429 " in line for line in lines)
    assert all(len(line) < 512 for line in lines), max(lines, key=len)


def stalled_body(port: int, source: str) -> socket.socket:
    """A sign-in that declares 1000 bytes of body, sends 10, and stalls."""
    sock = socket.create_connection(("127.0.0.1", port), source_address=(source, 0))
    sock.sendall(
        b"POST "
        + STALLED_PATH.encode()
        + b" HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n" + b'{"email": '
    )
    return sock


def test_one_address_holding_too_many_connections_gets_a_json_429(proxy):
    held = [stalled_body(proxy.port, "127.0.0.30") for _ in range(CONNECTIONS_PER_CLIENT)]
    try:
        time.sleep(0.3)  # nginx has read every held request's headers
        status, headers, body = parse(
            raw_request(proxy.port, request_line(b"/api/health/live"), "127.0.0.30")
        )
        assert status == 429
        assert_json_error(headers, body, "too_many_requests")
        other = client_from("127.0.0.31").get(proxy.url + "/api/health/live", timeout=5)
        assert other.status_code == 200
    finally:
        for sock in held:
            sock.close()


def test_the_shipped_file_has_only_known_placeholders_and_renders_whole():
    template = TEMPLATE.read_text()
    assert set(PLACEHOLDER.findall(template)) == {
        "PROXY_ADDRESS",
        "PROXY_PORT",
        "UPSTREAM",
        "RUN_DIR",
        "CORS_ORIGINS_MAP",
    }
    rendered = render(template, dict.fromkeys(PLACEHOLDER.findall(template), "x"))
    assert not PLACEHOLDER.search(rendered)
    with pytest.raises(KeyError, match="RUN_DIR"):
        render(template, {"PROXY_ADDRESS": "a", "PROXY_PORT": 1, "UPSTREAM": "b"})


def upstream_connections(port: int) -> int:
    """Established TCP connections to a local port right now (from /proc/net/tcp)."""
    established = "01"
    lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(
        1
        for line in lines
        if line.split()[1].endswith(f":{port:04X}") and line.split()[3] == established
    )


class SlowClients:
    """50 connections sending their headers a byte a second, 50 stalled bodies."""

    HEADER = b"GET /api/services HTTP/1.1\r\nHost: api\r\nX-Slow: " + b"s" * 100

    def __init__(self, port: int, count: int = 50):
        self.port = port
        # Spread over addresses: stalled bodies count against the per-client connection limit.
        self.headers = [self.connect(f"127.0.0.{2 + i % 2}") for i in range(count)]
        self.bodies = [stalled_body(port, f"127.0.0.{4 + i % 2}") for i in range(count)]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.trickle)

    def connect(self, source: str) -> socket.socket:
        """An open connection that has sent nothing yet."""
        return socket.create_connection(("127.0.0.1", self.port), source_address=(source, 0))

    def trickle(self) -> None:
        """Send the next byte of the header on every connection, once a second."""
        for byte in self.HEADER:
            for sock in self.headers:
                with contextlib.suppress(OSError):  # nginx closed it
                    sock.send(bytes([byte]))
            if self.stop.wait(1):
                return

    def closed_without_answer(self, sockets: list[socket.socket]) -> int:
        """How many of sockets nginx has closed without writing a byte of response."""
        closed = 0
        for sock in sockets:
            sock.setblocking(False)
            try:
                closed += sock.recv(1) == b""
            except ConnectionResetError:
                closed += 1
            except BlockingIOError:
                pass
        return closed

    def close(self) -> None:
        """Stop trickling and close every connection."""
        self.stop.set()
        self.thread.join()
        for sock in self.headers + self.bodies:
            sock.close()


def test_slow_clients_tie_up_no_worker_and_normal_requests_stay_fast(proxy, gunicorn):
    slow = SlowClients(proxy.port)
    slow.thread.start()
    normal = client_from("127.0.0.10")
    latencies, statuses, most_upstream = [], [], 0
    try:
        deadline = time.monotonic() + HEADER_TIMEOUT_S + 2
        while time.monotonic() < deadline:
            started = time.monotonic()
            statuses.append(normal.get(proxy.url + "/api/services", timeout=10).status_code)
            latencies.append(time.monotonic() - started)
            most_upstream = max(most_upstream, upstream_connections(gunicorn.port))
            time.sleep(0.05)
        header_closed = slow.closed_without_answer(slow.headers)
        body_closed = slow.closed_without_answer(slow.bodies)
    finally:
        slow.close()
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    assert set(statuses) == {200}
    assert p99 < 1, f"p99 {p99:.3f} s over {len(latencies)} requests"
    print(f"p99 {p99:.3f} s, max {latencies[-1]:.3f} s over {len(latencies)} requests")
    # Only the one normal request in flight ever reached gunicorn.
    assert most_upstream <= 1
    assert STALLED_PATH not in gunicorn.output()
    # Past client_header_timeout and client_body_timeout nginx dropped them, answering nothing.
    assert header_closed == len(slow.headers)
    assert body_closed == len(slow.bodies)
