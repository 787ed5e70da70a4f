"""Request ids on every response and error body; log lines in text or JSON, gunicorn's too."""

import json
import logging
import time

import pytest

from app.request_context import RequestContext, request_id_from
from app.request_log import JsonFormatter, TextFormatter
from tests.pg import admin_execute
from tests.servers import GunicornServer, run_gunicorn_expecting_exit

SANE_IDS = ["abc", "A.b-c_9", "x" * 128]
MALFORMED_IDS = ["", "has space", "x" * 129, "semi;colon", "quote'", "new\\nline", "ünï"]


@pytest.mark.parametrize("sent", SANE_IDS)
def test_a_sane_client_id_is_echoed(client, sent):
    response = client.get("/api/services", headers={"X-Request-ID": sent})
    assert response.headers["X-Request-ID"] == sent


@pytest.mark.parametrize("sent", MALFORMED_IDS)
def test_a_malformed_client_id_is_replaced_never_echoed(client, sent):
    response = client.get("/api/services", headers={"X-Request-ID": sent})
    echoed = response.headers["X-Request-ID"]
    assert echoed != sent
    assert request_id_from(echoed) == echoed  # The replacement is itself sane.


def test_each_request_without_an_id_gets_a_new_one(client):
    ids = {client.get("/api/health/live").headers["X-Request-ID"] for _ in range(5)}
    assert len(ids) == 5


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/services/424242", 404),
        ("GET", "/no/such/route", 404),
        ("DELETE", "/api/health", 405),
        ("POST", "/api/orders", 401),
        ("GET", "/metrics", 404),
    ],
)
def test_every_error_names_its_request(client, method, path, status):
    response = client.open(path, method=method, headers={"X-Request-ID": "trace-me.1"})
    assert response.status_code == status
    assert response.headers["X-Request-ID"] == "trace-me.1"
    assert response.get_json()["error"]["request_id"] == "trace-me.1"


def test_a_validation_error_names_its_request(client, customer):
    response = client.post("/api/orders", json={"quantity": "many"}, headers={**customer.headers})
    assert response.status_code == 422
    assert response.get_json()["error"]["request_id"] == response.headers["X-Request-ID"]


def record(name="app.test", msg="hello %s", args=("world",), **fields) -> logging.LogRecord:
    """A log record as a logger would make it, with extra fields."""
    made = logging.LogRecord(name, logging.WARNING, __file__, 1, msg, args, None)
    if fields:
        made.fields = fields
    return made


def test_json_lines_carry_time_level_logger_message_and_fields():
    line = json.loads(JsonFormatter().format(record(request_id="r1", status=200, route=None)))
    assert line["level"] == "WARNING"
    assert line["logger"] == "app.test"
    assert line["message"] == "hello world"
    assert line["time"].endswith("Z")
    assert (line["request_id"], line["status"]) == ("r1", 200)
    assert "route" not in line  # An unknown field is left out, not written as null.


def test_json_access_lines_read_gunicorns_atoms():
    context = RequestContext("r2", "GET", "/api/services/7", "/api/services/<id:service_id>")
    context.wait_s, context.queries = 0.0003, 1
    atoms = {"m": "GET", "s": "404", "D": "2500", "{app.request}e": context}
    made = record("gunicorn.access", "%(m)s %(s)s", ())
    made.args = atoms
    line = json.loads(JsonFormatter().format(made))
    assert line["message"] == "GET 404"
    assert line["status"] == 404
    assert line["duration_ms"] == 2.5
    assert (line["request_id"], line["db_wait_ms"], line["db_queries"]) == ("r2", 0.3, 1)


def test_text_lines_put_fields_after_the_message_and_a_stack_below():
    text = TextFormatter().format(record(request_id="r3", stack='  File "x.py", line 1'))
    first, second = text.splitlines()
    assert first.endswith("app.test: hello world request_id=r3")
    assert second == '  File "x.py", line 1'


def output_once(server: GunicornServer, wanted: str, timeout_s: float = 5) -> str:
    """The server's output as soon as it contains wanted (log lines follow the response)."""
    deadline = time.monotonic() + timeout_s
    while wanted not in (output := server.output()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return output


def json_lines(output: str) -> list[dict]:
    """Every line of a server's output, each of which must be a JSON object."""
    return [json.loads(line) for line in output.splitlines() if line.strip()]


@pytest.mark.process
def test_under_gunicorn_every_line_is_json_with_the_requests_fields(server_database_url):
    env = {"DATABASE_URL": server_database_url, "SLOW_REQUEST_MS": "1"}
    with GunicornServer(env) as server:
        response = server.get("/api/services", headers={"X-Request-ID": "json-1"})
        assert response.status_code == 200
        server.get("/api/services/424242", headers={"X-Request-ID": "json-2"})
        output = output_once(server, "GET /api/services/424242 HTTP/1.1")  # Its access line.
    lines = json_lines(output)  # Raises if any line is not JSON.
    assert {"gunicorn.error", "gunicorn.access", "app.request_log"} <= {x["logger"] for x in lines}
    access = [x for x in lines if x["logger"] == "gunicorn.access" and x.get("request_id")]
    by_id = {x["request_id"]: x for x in access}
    ok = by_id["json-1"]
    assert (ok["method"], ok["route"], ok["status"]) == ("GET", "/api/services", 200)
    assert ok["db_queries"] >= 1
    assert ok["db_wait_ms"] >= 0
    assert ok["duration_ms"] > 0
    assert by_id["json-2"]["route"] == "/api/services/<id:service_id>"
    assert by_id["json-2"]["status"] == 404
    slow = [x for x in lines if x["logger"] == "app.request_log" and x["request_id"] == "json-1"]
    assert slow and slow[0]["level"] == "WARNING"
    wanted = "time level logger message request_id method route status duration_ms db_wait_ms"
    assert set(slow[0]) >= {*wanted.split(), "db_queries"}


@pytest.mark.process
def test_log_format_text_writes_plain_lines_with_request_ids(server_database_url):
    env = {"DATABASE_URL": server_database_url, "LOG_FORMAT": "text"}
    with GunicornServer(env) as server:
        server.get("/api/services", headers={"X-Request-ID": "text-1"})
        output = output_once(server, "request_id=text-1")
    assert "request_id=text-1" in output
    assert not output.lstrip().startswith("{")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LOG_FORMAT", "xml"),
        ("METRICS_PORT", "0"),
        ("METRICS_PORT", "http"),
        ("METRICS_BIND", "localhost:9100"),
        ("SLOW_REQUEST_MS", "-1"),
        ("DB_LEAK_DETECTION_THRESHOLD", "soon"),
    ],
)
@pytest.mark.process
def test_a_bad_observability_variable_stops_gunicorn_with_one_line(name, value):
    code, output = run_gunicorn_expecting_exit({name: value})
    assert code != 0
    assert f"configuration error: {name}={value!r} is invalid" in output
    assert "Traceback" not in output


def test_the_server_sees_which_request_ran_a_statement(client, database_url, service_id):
    client.get(f"/api/services/{service_id}", headers={"X-Request-ID": "tagged-1"})
    # pg_stat_activity keeps each backend's last statement: our pooled connection's is the read.
    last_queries = admin_execute(
        "SELECT query FROM pg_stat_activity WHERE datname = current_database()",
        dsn=database_url,
    )
    tagged = [query for (query,) in last_queries if "request_id=tagged-1" in query]
    assert len(tagged) == 1
    assert tagged[0].startswith("SELECT services.id")
    assert tagged[0].endswith(" /* request_id=tagged-1 */")


@pytest.mark.process
def test_a_long_request_line_is_logged_cut_short(server_database_url):
    env = {"DATABASE_URL": server_database_url}
    with GunicornServer(env) as server:
        response = server.get("/api/services?q=" + "x" * 3500, headers={"X-Request-ID": "long-1"})
        assert response.status_code == 422
        output = output_once(server, '"long-1"')
    ours = [x for x in json_lines(output) if x.get("request_id") == "long-1"]
    assert ours and all(len(json.dumps(x)) < 1024 for x in ours), ours
