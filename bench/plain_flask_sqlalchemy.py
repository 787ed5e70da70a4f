"""Plain Flask-SQLAlchemy serving S1's request: the framework's defaults, nothing of ours.

What a Flask-SQLAlchemy tutorial writes: a model of the services table, `db.get_or_404`,
the row returned as JSON (the same fields GET /api/services/<id> answers). The session and
pool are Flask-SQLAlchemy's defaults: a transaction per request, rolled back at teardown,
a pool of 5 without pre-ping. Only application_name is set, so the bench's sampler can
count its connections.

`create_app(reads_in_autocommit=True)` is the same app on an engine in SQLAlchemy's
AUTOCOMMIT isolation level, so the read is one round trip with no BEGIN before it nor
ROLLBACK after: plain Flask-SQLAlchemy at ours' count of round trips (bench/network.py).
"""

import os
from datetime import datetime

from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Mapped, mapped_column

db = SQLAlchemy()


class Service(db.Model):
    """S1's row: the services table the app's migrations made."""

    __tablename__ = "services"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    description: Mapped[str]
    price_cents: Mapped[int]
    active: Mapped[bool]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    def to_dict(self) -> dict:
        """The row in the fields GET /api/services/<id> answers with."""
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "price_cents": self.price_cents,
            "active": self.active,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


def get_service(service_id: int):
    """One service by id, or Flask's 404."""
    return db.get_or_404(Service, service_id).to_dict()


def live():
    """Up, without the database: what the bench waits for before it loads."""
    return {"status": "ok"}


def create_app(reads_in_autocommit: bool = False) -> Flask:
    """The app on DATABASE_URL; in AUTOCOMMIT when reads_in_autocommit."""
    app = Flask(__name__)
    # psycopg2, as every subject: SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3.
    app.config["SQLALCHEMY_DATABASE_URI"] = make_url(os.environ["DATABASE_URL"]).set(
        drivername="postgresql+psycopg2"
    )
    options = {"connect_args": {"application_name": os.environ["DB_APPLICATION_NAME"]}}
    if reads_in_autocommit:
        options["isolation_level"] = "AUTOCOMMIT"
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options
    db.init_app(app)
    app.add_url_rule("/api/services/<int:service_id>", view_func=get_service)
    app.add_url_rule("/api/health/live", view_func=live)
    return app


# What gunicorn serves as BENCH_VARIANT=plain, and bench.instructions counts.
app = create_app()
