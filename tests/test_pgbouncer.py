"""The shipped PgBouncer configuration, run for real, and the app's reader of its console."""

import configparser
import json
import threading
import time

import psycopg2
import pytest
import sqlalchemy as sa
from flask_migrate import upgrade

from app import create_app
from app.database import dispose_engines, reading, transaction
from app.database.pgbouncer import PoolerSettings, pgbouncer_settings, pool_numbers
from app.extensions import db
from deploy.pgbouncer import SHIPPED_INI, PgBouncer
from deploy.ports import free_port
from tests import pg
from tests.conftest import TEST_SETTINGS

pytestmark = pytest.mark.process

# What deploy/pgbouncer.py overrides to run on one machine; every other key is the shipped one.
MACHINE_KEYS = {
    "listen_addr",
    "listen_port",
    "unix_socket_dir",
    "logfile",
    "pidfile",
    "auth_type",
    "auth_file",
    "admin_users",
}


def shipped_settings() -> dict[str, str]:
    """The [pgbouncer] section of deploy/pgbouncer.ini."""
    config = configparser.ConfigParser(interpolation=None)
    config.read(SHIPPED_INI)
    return dict(config["pgbouncer"])


def wait_for(condition, timeout_s: float = 5):
    """condition()'s first truthy value, polled until timeout_s."""
    deadline = time.monotonic() + timeout_s
    while not (value := condition()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return value


def test_the_running_configuration_is_the_shipped_one(pgbouncer):
    running = {row["key"]: row["value"] for row in pgbouncer.show("CONFIG")}
    shipped = shipped_settings()
    assert shipped["pool_mode"] == "transaction"
    assert "ignore_startup_parameters" not in shipped
    for key, value in shipped.items():
        if key not in MACHINE_KEYS:
            assert running[key] == value, key


def test_pool_numbers_count_active_and_waiting_clients():
    with PgBouncer(default_pool_size=1, reserve_pool_size=0) as bouncer:
        holder = psycopg2.connect(bouncer.url("postgres"), application_name="holder")
        holder.cursor().execute("SELECT 1")  # psycopg2 opened a transaction: the server is ours
        waiter = threading.Thread(target=run_one_query, args=(bouncer.url("postgres"),))
        waiter.start()
        try:
            wait_for(lambda: bouncer.pool("postgres").get("cl_waiting"))
            waiting, _ = pool_numbers(bouncer.admin_url, "postgres", "postgres")
            clients = {
                client["application_name"]: client["state"]
                for client in bouncer.show_clients("postgres")
            }
        finally:
            holder.rollback()
            waiter.join()
            holder.close()
    assert waiting.cl_active == 1 and waiting.cl_waiting == 1
    assert waiting.sv_active == 1 and waiting.sv_idle == 0
    assert waiting.maxwait_s > 0
    assert clients == {"holder": "active", "waiter": "waiting"}


def run_one_query(url: str) -> None:
    """Connect as "waiter", run one query, disconnect."""
    connection = psycopg2.connect(url, application_name="waiter")
    try:
        connection.cursor().execute("SELECT 1")
    finally:
        connection.close()


def test_a_pool_no_client_opened_reads_as_zero(pgbouncer):
    numbers, error = pool_numbers(pgbouncer.admin_url, "nobody_came", "postgres")
    assert error is None
    assert numbers.report() == {
        "clientsActive": 0,
        "clientsWaiting": 0,
        "serversActive": 0,
        "serversIdle": 0,
        "serversUsed": 0,
        "longestWaitSeconds": 0,
    }


def test_settings_read_back_the_shipped_numbers(pgbouncer):
    settings, error = pgbouncer_settings(pgbouncer.admin_url)
    shipped = shipped_settings()
    assert error is None
    for key in ("default_pool_size", "max_client_conn", "query_wait_timeout"):
        assert settings.config[key] == float(shipped[key])
    pool, reserve = int(shipped["default_pool_size"]), int(shipped["reserve_pool_size"])
    assert int(shipped["max_db_connections"]) == pool + reserve
    assert settings.server_connections("ordering") == (
        pool + reserve,
        f"PgBouncer pool_size {pool} + reserve_pool_size {reserve} = {pool + reserve}",
    )


def test_an_unreachable_console_answers_none_and_the_reason():
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/pgbouncer"
    started = time.monotonic()
    numbers, numbers_error = pool_numbers(url, "app", "postgres")
    settings, settings_error = pgbouncer_settings(url)
    assert time.monotonic() - started < 2
    assert numbers is None and settings is None
    assert "Connection refused" in numbers_error and "Connection refused" in settings_error


def test_server_connections_are_the_pool_and_reserve_unless_capped():
    config = {"default_pool_size": 20, "reserve_pool_size": 5, "max_db_connections": 0}
    assert PoolerSettings(config, {}).server_connections("app") == (
        25,
        "PgBouncer pool_size 20 + reserve_pool_size 5 = 25",
    )
    capped = PoolerSettings(
        config, {"app": {"pool_size": 8, "reserve_pool": 2, "max_connections": 6}}
    )
    assert capped.server_connections("app") == (6, "PgBouncer max_db_connections 6")


def test_pause_holds_queries_until_resume_and_restart_keeps_the_port(pgbouncer):
    connection = psycopg2.connect(pgbouncer.url("postgres"))
    connection.autocommit = True
    try:
        pgbouncer.pause()
        timer = threading.Timer(0.5, pgbouncer.resume)
        timer.start()
        started = time.monotonic()
        connection.cursor().execute("SELECT 1")
        held_s = time.monotonic() - started
        timer.join()
    finally:
        connection.close()
    port = pgbouncer.port
    pgbouncer.restart()
    after = psycopg2.connect(pgbouncer.url("postgres"))
    after.close()
    assert held_s >= 0.4
    assert pgbouncer.port == port


def app_behind(bouncer: PgBouncer, database_url: str, **settings):
    """The app on database_url's database, through bouncer in transaction mode."""
    database = pg.database_name(database_url)
    return create_app(
        {
            **TEST_SETTINGS,
            "DATABASE_URL": bouncer.url(database),
            "DB_POOLER": "pgbouncer",
            "PGBOUNCER_ADMIN_URL": bouncer.admin_url,
            **settings,
        }
    )


def test_health_adds_pgbouncers_numbers_and_names_no_host(pgbouncer, server_database_url):
    app = app_behind(pgbouncer, server_database_url)
    try:
        response = app.test_client().get("/api/health")
    finally:
        dispose_engines(app, close=True)
    assert response.status_code == 200
    pooler = response.json["database"]["pooler"]
    assert set(pooler) == {
        "clientsActive",
        "clientsWaiting",
        "serversActive",
        "serversIdle",
        "serversUsed",
        "longestWaitSeconds",
    }
    assert str(pgbouncer.port) not in response.text


def test_every_statement_runs_under_our_limits_and_leaves_none_behind(server_database_url):
    # One server connection, so whatever a statement left on it, the next client would see.
    with PgBouncer(default_pool_size=1, reserve_pool_size=0) as bouncer:
        app = app_behind(bouncer, server_database_url, DB_STATEMENT_TIMEOUT=300)
        try:
            with app.app_context():
                with reading() as session:
                    read_limits = session.execute(sa.text(SHOW_LIMITS)).one()
                    with pytest.raises(sa.exc.OperationalError) as cancelled:
                        session.execute(sa.text("SELECT pg_sleep(2)"))
                with transaction() as session:
                    unit_limits = session.execute(sa.text(SHOW_LIMITS)).one()
        finally:
            dispose_engines(app, close=True)
        assert isinstance(cancelled.value.orig, psycopg2.errors.QueryCanceled)
        assert read_limits == unit_limits == ("300ms", "30s")
        assert limits_of_a_plain_client(bouncer, server_database_url) == ("0", "0")


def test_migrations_through_pgbouncer_leave_no_setting_behind():
    database, database_url = pg.create_database("apptest_migrate")
    try:
        with PgBouncer(default_pool_size=1, reserve_pool_size=0) as bouncer:
            app = create_app(
                {"DATABASE_URL": bouncer.url(database), "DB_POOLER": "pgbouncer", "SECRET_KEY": "x"}
            )
            try:
                with app.app_context():
                    upgrade()
            finally:
                dispose_engines(app, close=True)
            assert limits_of_a_plain_client(bouncer, database_url) == ("0", "0")
            assert pg.admin_execute("SELECT count(*) FROM services", dsn=database_url) == [(0,)]
    finally:
        pg.drop_database(database)


SHOW_LIMITS = (
    "SELECT current_setting('statement_timeout'),"
    " current_setting('idle_in_transaction_session_timeout')"
)
SHOW_MIGRATION_LIMITS = (
    "SELECT current_setting('statement_timeout'), current_setting('lock_timeout')"
)


def limits_of_a_plain_client(bouncer: PgBouncer, database_url: str) -> tuple[str, str]:
    """The limits a client that sets none finds on PgBouncer's server connection."""
    connection = psycopg2.connect(bouncer.url(pg.database_name(database_url)))
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                SHOW_LIMITS.replace("idle_in_transaction_session_timeout", "lock_timeout")
            )
            return cursor.fetchone()
    finally:
        connection.close()


def db_info(app) -> dict:
    """`flask db-info --json` of app."""
    result = app.test_cli_runner().invoke(args=["db-info", "--json"])
    return json.loads(result.output[result.output.index("{") :])


def test_db_info_reads_the_limits_back_and_names_a_missing_db_pooler(
    pgbouncer, server_database_url
):
    behind = app_behind(pgbouncer, server_database_url)
    database = pg.database_name(server_database_url)
    unaware = create_app({**TEST_SETTINGS, "DATABASE_URL": pgbouncer.url(database)})
    try:
        assert db_info(behind)["serverSettings"]["warnings"] == []
        assert db_info(behind)["health"]["database"]["pooler"]["serversActive"] >= 0
        [warning] = db_info(unaware)["serverSettings"]["warnings"]
    finally:
        dispose_engines(behind, close=True)
        dispose_engines(unaware, close=True)
    assert "unsupported startup parameter: options" in warning
    assert "set DB_POOLER=pgbouncer" in warning


def test_a_queue_timeout_is_busy_and_drops_only_its_own_connection(server_database_url):
    invalidated = []
    with PgBouncer(default_pool_size=1, reserve_pool_size=0, query_wait_timeout=1) as bouncer:
        app = app_behind(bouncer, server_database_url, DB_POOL_SIZE=2, DB_MAX_OVERFLOW=0)
        holder = psycopg2.connect(bouncer.url(pg.database_name(server_database_url)))
        try:
            with app.app_context():
                engine = db.engine
                sa.event.listen(engine, "invalidate", lambda *args: invalidated.append(args))
                with engine.connect() as waiter, engine.connect() as bystander:
                    bystander.execute(sa.text("SELECT 1"))
                    bystander_socket = bystander.connection.dbapi_connection
                    holder.cursor().execute("SELECT 1")  # PgBouncer's one server is the holder's
                    started = time.monotonic()
                    with pytest.raises(sa.exc.TimeoutError):
                        waiter.execute(sa.text("SELECT 1"))
                    waited_s = time.monotonic() - started
                    bystander_kept = bystander_socket.closed == 0
        finally:
            holder.close()
            dispose_engines(app, close=True)
    assert 1 <= waited_s < 2
    assert len(invalidated) == 1, "only the connection PgBouncer closed is dropped"
    assert bystander_kept


def test_an_unreadable_console_is_reported_not_an_outage(pgbouncer, server_database_url):
    app = app_behind(
        pgbouncer,
        server_database_url,
        DATABASE_DIRECT_URL=server_database_url,
        PGBOUNCER_ADMIN_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/pgbouncer",
    )
    try:
        response = app.test_client().get("/api/health")
    finally:
        dispose_engines(app, close=True)
    assert response.status_code == 200
    assert response.json["database"]["pooler"] == {
        "error": "PgBouncer's admin console cannot be reached"
    }


def timed_health(bouncer: PgBouncer, database_url: str) -> tuple[int, float]:
    """GET /api/health of an app behind bouncer (server counts direct): status, seconds."""
    app = app_behind(
        bouncer,
        database_url,
        DATABASE_DIRECT_URL=database_url,
        PGBOUNCER_ADMIN_URL="",
        DB_CONNECT_TIMEOUT=2,
    )
    try:
        started = time.monotonic()
        status = app.test_client().get("/api/health").status_code
        return status, time.monotonic() - started
    finally:
        dispose_engines(app, close=True)


def test_health_does_not_queue_behind_pgbouncers_busy_pool(server_database_url):
    with PgBouncer(default_pool_size=1, reserve_pool_size=0, query_wait_timeout=10) as bouncer:
        holder = psycopg2.connect(bouncer.url(pg.database_name(server_database_url)))
        try:
            holder.cursor().execute("SELECT 1")  # PgBouncer's one server is the holder's
            status, seconds = timed_health(bouncer, server_database_url)
        finally:
            holder.close()
    assert status == 200
    assert seconds < 1, "a login is answered by PgBouncer itself; a statement would queue"


def test_health_answers_503_within_the_connect_timeout_when_pgbouncer_is_paused(
    pgbouncer, server_database_url
):
    pgbouncer.pause()
    try:
        status, seconds = timed_health(pgbouncer, server_database_url)
    finally:
        pgbouncer.resume()
    assert status == 503
    assert seconds < 2 + 1  # DB_CONNECT_TIMEOUT + 1 s
