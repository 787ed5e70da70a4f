"""The app plus two views that misuse connections, for the leak detector's tests only."""

import time

import sqlalchemy as sa
from flask import Blueprint, request

from app import create_app
from app.extensions import db

leaky = Blueprint("leaky", __name__, url_prefix="/test")
# Connections the leaking view never closes: referenced here, so nothing collects them.
KEPT = []


@leaky.get("/hold")
def hold():
    """Hold a connection outside the session for ?seconds=, then give it back."""
    with db.engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))
        time.sleep(float(request.args["seconds"]))
    return {"held": True}


@leaky.get("/leak")
def leak():
    """Take a connection outside the session and never close it."""
    connection = db.engine.connect()
    connection.execute(sa.text("SELECT 1"))
    KEPT.append(connection)
    return {"leaked": True}


app = create_app()
app.register_blueprint(leaky)
