"""The process's database: one bounded engine, its health probe and their lifecycle."""

from pathlib import Path

from flask import Flask, current_app
from sqlalchemy.engine import Engine

from app.config import Settings, app_settings
from app.database.cursor import count_statements
from app.database.deadline import install_client_deadline
from app.database.engine import engine_options
from app.database.health import HealthProbe
from app.database.pgbouncer import install_pgbouncer_mode
from app.database.pool_gate import install_gate_returns
from app.database.pool_metrics import install_pool_metrics
from app.database.pre_ping import install_pre_ping
from app.database.read_only import install_read_only_handling
from app.database.replicas import install_replicas, read_stale_ok, replica_set
from app.database.session import install_unit_of_work, reading, remove_session, transaction
from app.extensions import db, migrate

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent.parent / "migrations"

__all__ = [
    "dispose_engines",
    "engine_options",
    "health_probe",
    "init_app",
    "read_stale_ok",
    "reading",
    "transaction",
]


def init_app(app: Flask) -> None:
    """Bind Flask-SQLAlchemy and Flask-Migrate, and give the app its health probe.

    The request's session is removed at teardown_appcontext; removing a session closes
    it, which rolls back whatever was not committed.
    """
    settings = app_settings(app)
    app.config["SQLALCHEMY_DATABASE_URI"] = settings.database_url
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(settings)
    install_pool_metrics(app)
    db.init_app(app)
    with app.app_context():
        configure_engine(db.engine, settings)
        install_unit_of_work(db.engine)
    install_replicas(app)
    # After Flask-SQLAlchemy's own teardown, so it runs first (last in, first out) and
    # theirs finds the session already removed.
    app.teardown_appcontext(remove_session)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR))
    app.extensions["health_probe"] = HealthProbe(settings)


def configure_engine(engine: Engine, settings: Settings) -> None:
    """Install the request pool's client deadline, pre-ping, read-only and PgBouncer rules, and
    SQLite's statement count.

    Each statement's own limits ride in the cursor its connections make (cursor.py).
    """
    if engine.dialect.name == "sqlite":
        count_statements(engine)
    pgbouncer = settings.behind_pgbouncer
    install_gate_returns(engine)
    if engine.dialect.name == "postgresql":
        install_client_deadline()
        install_read_only_handling(engine)
    if pgbouncer:
        install_pgbouncer_mode(engine, settings)
    if settings.db_pool_pre_ping:
        install_pre_ping(engine, ping_server=not pgbouncer)


def health_probe() -> HealthProbe:
    """The current app's health probe."""
    return current_app.extensions["health_probe"]


def engines(app: Flask) -> list[Engine]:
    """Every engine the app owns: the request pool, the health probe and any replica's pool."""
    replicas = replica_set(app)
    with app.app_context():
        own = [db.engine, app.extensions["health_probe"].engine]
    return own + (list(replicas.engines().values()) if replicas else [])


def dispose_engines(app: Flask, close: bool) -> None:
    """Drop the app's pooled connections.

    close=False after a fork: the parent still owns those sockets, so the child must
    forget them without sending a goodbye on them.
    """
    for engine in engines(app):
        engine.dispose(close=close)
    replicas = replica_set(app)
    if close and replicas:
        replicas.stop()
