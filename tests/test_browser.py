"""A real browser on another origin reads every answer, nginx's own errors included.

Headless Chromium (Debian's `chromium`) loads a page from an allowed origin that calls the
API through nginx, the way a front end does, and reports what its script could read.
"""

import http.server
import json
import shutil
import subprocess
import tempfile
import threading

import pytest

from deploy.ports import free_port
from tests.servers import GunicornServer, NginxServer

pytestmark = pytest.mark.process

PAGE_HOST = "127.0.0.2"  # Another address is another origin, as a front end's would be.
BROWSER_TIMEOUT_S = 60
# What the page's script does; it posts what it could read back to its own origin.
SCRIPT = """
const api = new URL(location).searchParams.get("api");
async function read(response) {
  return {status: response.status, requestId: response.headers.get("X-Request-ID"),
          retryAfter: response.headers.get("Retry-After"),
          code: response.headers.get("Content-Type") === "application/json"
                ? ((await response.json()).error || {}).code || null : null};
}
async function attempt(call) {
  try { return await read(await call()); } catch (error) { return {failed: String(error)}; }
}
async function run() {
  const seen = {};
  seen.missing = await attempt(() => fetch(api + "/api/services/999999"));
  seen.tooLarge = await attempt(() => fetch(api + "/api/auth/login", {
    method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({email: "a@example.com", password: "x".repeat(1100000)})}));
  seen.burst = [];
  for (let i = 0; i < 400; i++) {
    const answer = await attempt(() => fetch(api + "/api/health/live"));
    seen.burst.push(answer);
    if (answer.status === 429) break;
  }
  await fetch("/result", {method: "POST", body: JSON.stringify(seen)});
}
run();
"""


class PageServer(http.server.ThreadingHTTPServer):
    """Serves the page, and keeps what its script reports."""

    def __init__(self):
        super().__init__((PAGE_HOST, free_port()), PageHandler)
        self.result: dict | None = None
        self.reported = threading.Event()

    @property
    def origin(self) -> str:
        """The page's origin, as the browser sends it."""
        return f"http://{PAGE_HOST}:{self.server_address[1]}"


class PageHandler(http.server.BaseHTTPRequestHandler):
    """GET / is the page; POST /result is its report."""

    def do_GET(self):
        """The page: nothing but the script."""
        body = f"<!doctype html><title>client</title><script>{SCRIPT}</script>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        """The script's report."""
        length = int(self.headers["Content-Length"])
        self.server.result = json.loads(self.rfile.read(length))
        self.send_response(204)
        self.end_headers()
        self.server.reported.set()

    def log_message(self, *_args):
        """Quiet: the test says what went wrong."""


@pytest.fixture(scope="module")
def page():
    """The front end's origin, served on another loopback address."""
    server = PageServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def stack(server_database_url, page):
    """gunicorn behind the shipped nginx, both allowing the page's origin."""
    env = {
        "DATABASE_URL": server_database_url,
        "TRUSTED_PROXY_HOPS": "1",
        "CORS_ORIGINS": page.origin,
    }
    with (
        GunicornServer(env) as gunicorn,
        NginxServer(f"127.0.0.1:{gunicorn.port}", [page.origin]) as nginx,
    ):
        yield nginx


def run_browser(url: str, page: PageServer) -> dict:
    """Load url in headless Chromium until the page reports; return its report."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("no chromium: apt-get install -y --no-install-recommends chromium")
    with tempfile.TemporaryDirectory() as profile:
        browser = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             f"--user-data-dir={profile}", "--remote-debugging-port=0", url],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            reported = page.reported.wait(BROWSER_TIMEOUT_S)
        finally:
            browser.kill()
            errors = browser.communicate()[1].decode(errors="replace")
    assert reported, "the page never reported:\n" + errors[-3000:]
    return page.result


@pytest.fixture(scope="module")
def seen(stack, page) -> dict:
    """What the page's script could read of each answer."""
    return run_browser(f"{page.origin}/?api={stack.url}", page)


def test_the_script_reads_the_apps_errors_and_their_request_id(seen):
    assert seen["missing"]["status"] == 404
    assert seen["missing"]["code"] == "not_found"
    assert seen["missing"]["requestId"]


def test_the_script_reads_nginxs_413(seen):
    assert seen["tooLarge"] == {
        "status": 413,
        "code": "request_entity_too_large",
        "requestId": seen["tooLarge"]["requestId"],
        "retryAfter": None,
    }
    assert seen["tooLarge"]["requestId"]


def test_a_burst_is_throttled_readably_and_nothing_fails_to_fetch(seen):
    burst = seen["burst"]
    assert [answer for answer in burst if "failed" in answer] == []
    assert {answer["status"] for answer in burst[:-1]} == {200}
    throttled = burst[-1]
    assert (throttled["status"], throttled["code"], throttled["retryAfter"]) == (
        429,
        "too_many_requests",
        "1",
    )
    assert throttled["requestId"]


def test_nginxs_own_errors_allow_only_the_listed_origins(stack, page):
    for origin, allowed in ((page.origin, page.origin), ("https://elsewhere.example", None)):
        answer = stack.get("/api", headers={"Origin": origin})  # nginx's own JSON 404
        assert answer.status_code == 404
        assert answer.headers.get("Access-Control-Allow-Origin") == allowed
