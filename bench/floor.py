"""The floor: the least a WSGI app can do to answer S1's request from PostgreSQL.

One psycopg2 connection per worker in autocommit mode, one query, json.dumps. No framework,
no pool, no ORM: the app under test is measured against this, side by side in one run.
"""

import json
import os

import psycopg2

ROW_QUERY = (
    "SELECT id, name, description, price_cents, active, created_at, updated_at"
    " FROM services WHERE id = %s"
)
COLUMNS = ("id", "name", "description", "price_cents", "active", "created_at", "updated_at")
JSON_HEADERS = [("Content-Type", "application/json")]

# Opened on a worker's first request, after the fork, so no two workers share it.
connection = None


def database_connection():
    """This worker's one connection, opened (again) when it has none or it broke."""
    global connection
    if connection is None or connection.closed:
        connection = psycopg2.connect(
            os.environ["DATABASE_URL"], application_name=os.environ["DB_APPLICATION_NAME"]
        )
        connection.autocommit = True
    return connection


def service_row(service_id: int) -> dict | None:
    """The service row as the API's JSON shows it, or None."""
    with database_connection().cursor() as cursor:
        cursor.execute(ROW_QUERY, (service_id,))
        row = cursor.fetchone()
    if row is None:
        return None
    service = dict(zip(COLUMNS, row, strict=True))
    service["created_at"] = service["created_at"].isoformat()
    service["updated_at"] = service["updated_at"].isoformat()
    return service


def respond(start_response, status: str, body: dict) -> list[bytes]:
    """Send one JSON response."""
    payload = json.dumps(body).encode()
    start_response(status, [*JSON_HEADERS, ("Content-Length", str(len(payload)))])
    return [payload]


def app(environ, start_response):
    """Answer /api/services/<id> from the database and /api/health/live without it."""
    path = environ.get("PATH_INFO", "")
    if path == "/api/health/live":
        return respond(start_response, "200 OK", {"status": "ok"})
    last = path.rsplit("/", 1)[-1]
    if not path.startswith("/api/services/") or not last.isdigit():
        return respond(start_response, "404 Not Found", {"error": {"code": "not_found"}})
    service = service_row(int(last))
    if service is None:
        return respond(start_response, "404 Not Found", {"error": {"code": "not_found"}})
    return respond(start_response, "200 OK", service)
