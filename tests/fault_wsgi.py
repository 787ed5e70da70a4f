"""The app plus routes only tests need: a failing write, the backend pid, a slow statement."""

import os
import socket

import sqlalchemy as sa
from flask import Blueprint, request

from app import create_app
from app.database import transaction
from app.extensions import db
from app.models import Service

faults = Blueprint("faults", __name__, url_prefix="/test")


@faults.post("/fail-inside-transaction")
def fail_inside_transaction():
    """Write a row, then fail before the block ends: nothing may be committed."""
    with transaction() as session:
        session.add(Service(name="must never be committed", price_cents=1))
        session.flush()
        raise RuntimeError("failure inside transaction()")


@faults.get("/backend")
def backend():
    """Which worker answered, on which server backend and which local port of its socket."""
    backend_pid = db.session.scalar(sa.text("SELECT pg_backend_pid()"))
    driver_connection = db.session.connection().connection.driver_connection
    with socket.socket(fileno=os.dup(driver_connection.fileno())) as sock:
        client_port = sock.getsockname()[1]
    return {"worker_pid": os.getpid(), "backend_pid": backend_pid, "client_port": client_port}


@faults.get("/sleep")
def sleep():
    """Hold a connection for ?seconds= inside one statement."""
    db.session.execute(sa.text("SELECT pg_sleep(:s)"), {"s": float(request.args["seconds"])})
    return {"slept": True}


def warm_pool_in_master(flask_app) -> None:
    """Leave a live connection in the pool before gunicorn forks (preload_app)."""
    with flask_app.app_context():
        db.session.execute(sa.text("SELECT 1"))
        db.session.remove()


app = create_app()
app.register_blueprint(faults)
if os.environ.get("TEST_WARM_POOL_IN_MASTER"):
    warm_pool_in_master(app)
