"""The process's database: one bounded engine, its health probe and their lifecycle."""

from flask import Flask, current_app
from sqlalchemy.engine import Engine

from app.database.engine import engine_options
from app.database.health import HealthProbe
from app.database.pool_metrics import install_pool_metrics
from app.database.pre_ping import install_pre_ping
from app.database.session import remove_session, transaction
from app.extensions import db, migrate

__all__ = [
    "dispose_engines",
    "engine_options",
    "health_probe",
    "init_app",
    "pool_engine",
    "transaction",
]
# The request pool's engine, kept where the hot path finds it in one lookup: db.engine
# takes a dozen calls through Flask-SQLAlchemy's per-app registry, on every request.
POOL_ENGINE = "pool_engine"


def init_app(app: Flask) -> None:
    """Bind Flask-SQLAlchemy and Flask-Migrate, and give the app its health probe.

    The request's session is removed at teardown_appcontext; removing a session closes
    it, which rolls back whatever was not committed.
    """
    settings = app.config
    app.config["SQLALCHEMY_DATABASE_URI"] = settings["DATABASE_URL"]
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(settings)
    install_pool_metrics(app)
    db.init_app(app)
    with app.app_context():
        app.extensions[POOL_ENGINE] = db.engine
    if settings["DB_POOL_PRE_PING"]:
        app.extensions["pre_ping"] = install_pre_ping(app.extensions[POOL_ENGINE])
    replace_session_teardown(app)
    migrate.init_app(app, db, directory=str(app.config["MIGRATIONS_DIR"]))
    app.extensions["health_probe"] = HealthProbe(settings)


def replace_session_teardown(app: Flask) -> None:
    """Remove the request's session with remove_session instead of Flask-SQLAlchemy's own.

    Both call session.remove(); ours also survives a connection the server dropped after
    the view answered. Where Flask-SQLAlchemy's hook cannot be found, ours is added after
    it, so it runs first (teardowns run last-in, first-out) and theirs finds nothing left.
    """
    hooks = app.teardown_appcontext_funcs
    theirs = getattr(db, "_teardown_session", None)
    if theirs in hooks:
        hooks[hooks.index(theirs)] = remove_session
    else:
        app.teardown_appcontext(remove_session)


def pool_engine() -> Engine:
    """The current app's request pool engine (db.engine, found faster)."""
    return current_app.extensions[POOL_ENGINE]


def health_probe() -> HealthProbe:
    """The current app's health probe."""
    return current_app.extensions["health_probe"]


def engines(app: Flask) -> list[Engine]:
    """Every engine the app owns: the request pool and the health probe."""
    with app.app_context():
        return [db.engine, app.extensions["health_probe"].engine]


def dispose_engines(app: Flask, close: bool) -> None:
    """Drop the app's pooled connections.

    close=False after a fork: the parent still owns those sockets, so the child must
    forget them without sending a goodbye on them.
    """
    for engine in engines(app):
        engine.dispose(close=close)
