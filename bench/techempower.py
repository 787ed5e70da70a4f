"""TechEmpower's Flask entry, serving S1's request: the peer the app is measured against.

Written as TechEmpower's Flask app is (TechEmpower/FrameworkBenchmarks,
frameworks/Python/flask/app.py, its `/db` route): a Pony ORM entity read by primary key,
`Entity[id]` inside `db_session(serializable=False)`, its `to_dict()` written by orjson.
Here the entity is S1's services row and the response carries the same fields as
GET /api/services/<id>. No pool limits, pre-ping, metrics or rate limits: Pony keeps one
connection per worker thread, as TechEmpower runs it.
"""

import os
from datetime import datetime

import orjson
from flask import Flask
from pony import orm

JSON_HEADERS = {"Content-Type": "application/json"}

app = Flask(__name__)
db = orm.Database()


class Service(db.Entity):
    """S1's row: the services table the app's migrations made."""

    _table_ = "services"
    id = orm.PrimaryKey(int)
    name = orm.Required(str)
    description = orm.Required(str)
    price_cents = orm.Required(int, size=64)
    active = orm.Required(bool)
    created_at = orm.Required(datetime)
    updated_at = orm.Required(datetime)

    def to_dict(self) -> dict:
        """The row in the fields GET /api/services/<id> answers with."""
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "price_cents": self.price_cents,
            "active": self.active,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


# Imported in each worker after the fork (no preload), so no two workers share a connection.
db.bind(
    provider="postgres",
    dsn=os.environ["DATABASE_URL"],
    application_name=os.environ["DB_APPLICATION_NAME"],
)
db.generate_mapping(create_tables=False)


def jsonify(body: dict, status: int = 200):
    """TechEmpower's orjson response: the bytes, a status and the content type."""
    return orjson.dumps(body), status, JSON_HEADERS


@app.route("/api/services/<int:service_id>")
def get_service(service_id: int):
    """One service by id, read through Pony's identity map as TechEmpower's /db reads a World."""
    try:
        with orm.db_session(serializable=False):
            service = Service[service_id]
    except orm.ObjectNotFound:
        return jsonify({"error": {"code": "not_found"}}, 404)
    return jsonify(service.to_dict())


@app.route("/api/health/live")
def live():
    """Up, without the database: what the bench waits for before it loads."""
    return jsonify({"status": "ok"})
