"""Plain Flask-SQLAlchemy serving S1's request: the framework's defaults, nothing of ours.

What a Flask-SQLAlchemy tutorial writes: a model of the services table, `db.get_or_404`,
the row returned as JSON (the same fields GET /api/services/<id> answers). The session and
pool are Flask-SQLAlchemy's defaults: a transaction per request, rolled back at teardown,
a pool of 5 without pre-ping. Only application_name is set, so the bench's sampler can
count its connections.
"""

import os
from datetime import datetime

from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Mapped, mapped_column

app = Flask(__name__)
# psycopg2, as every subject: SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3.
app.config["SQLALCHEMY_DATABASE_URI"] = make_url(os.environ["DATABASE_URL"]).set(
    drivername="postgresql+psycopg2"
)
app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
    "connect_args": {"application_name": os.environ["DB_APPLICATION_NAME"]}
}
db = SQLAlchemy(app)


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


@app.route("/api/services/<int:service_id>")
def get_service(service_id: int):
    """One service by id, or Flask's 404."""
    return db.get_or_404(Service, service_id).to_dict()


@app.route("/api/health/live")
def live():
    """Up, without the database: what the bench waits for before it loads."""
    return {"status": "ok"}
