"""The budget arithmetic, verdict by verdict."""

from app.config import load_settings
from app.database.budget import BudgetCheck, ServerLimits, check_budget
from app.database.pgbouncer import PoolerSettings

LIMITS = ServerLimits(max_connections=100, superuser_reserved=3, in_use=10)


def settings(**values):
    """Settings from the environment-style values given."""
    return load_settings({k: str(v) for k, v in values.items()})


def test_a_deployment_within_every_limit_passes():
    verdict = check_budget(settings(DB_CONNECTION_BUDGET=22), LIMITS)
    assert (verdict.worst_case, verdict.errors, verdict.warnings) == (22, [], [])


def test_over_the_budget_is_refused_with_each_number():
    verdict = check_budget(settings(DB_CONNECTION_BUDGET=21), LIMITS)
    assert verdict.errors == [
        "worst case WEB_CONCURRENCY 2 × (DB_POOL_SIZE 5 + DB_MAX_OVERFLOW 5 + health probe 1)"
        " = 22 exceeds DB_CONNECTION_BUDGET 21"
    ]


def test_over_what_the_server_gives_is_refused():
    verdict = check_budget(settings(WEB_CONCURRENCY=9), LIMITS)
    assert "= 99 exceeds what the server can give: max_connections 100" in verdict.errors[0]
    assert "superuser_reserved_connections 3 = 97" in verdict.errors[0]


def test_fewer_free_connections_than_the_worst_case_only_warns():
    verdict = check_budget(settings(WEB_CONCURRENCY=8), LIMITS)
    assert verdict.errors == []
    assert verdict.warnings == [
        "worst case 88 exceeds the server's free connections now: 97 available − 10 in use = 87"
    ]


def test_an_unreachable_server_only_warns():
    verdict = check_budget(settings(), None, "connection refused")
    assert verdict.errors == []
    assert verdict.warnings == ["server limits not checked: connection refused"]


def test_more_threads_than_connections_warns():
    verdict = check_budget(settings(GUNICORN_THREADS=8, DB_POOL_SIZE=2, DB_MAX_OVERFLOW=1), LIMITS)
    assert verdict.warnings == [
        "GUNICORN_THREADS 8 > DB_POOL_SIZE + DB_MAX_OVERFLOW 3: the other threads wait up to"
        " DB_POOL_TIMEOUT 10 s for a connection"
    ]


BOUNCER_CONFIG = {
    "max_client_conn": 100,
    "default_pool_size": 20,
    "reserve_pool_size": 5,
    "max_db_connections": 0,
    "query_wait_timeout": 10,
}
BEHIND_PGBOUNCER = {
    "DB_POOLER": "pgbouncer",
    "DATABASE_URL": "postgresql://app@pgbouncer/app",
    "SECRET_KEY": "x",
}


def behind_pgbouncer(pooler_config: dict | None = None, **values) -> BudgetCheck:
    """The verdict behind PgBouncer (BOUNCER_CONFIG changed by pooler_config), budget 22."""
    pooler = PoolerSettings({**BOUNCER_CONFIG, **(pooler_config or {})}, {})
    values = {**BEHIND_PGBOUNCER, "DB_CONNECTION_BUDGET": 22, **values}
    return check_budget(settings(**values), LIMITS, None, pooler)


def test_behind_pgbouncer_the_worst_case_is_of_client_connections():
    verdict = behind_pgbouncer(
        {"max_client_conn": 1000}, WEB_CONCURRENCY=9, DB_CONNECTION_BUDGET=99
    )
    assert (verdict.worst_case, verdict.errors, verdict.warnings) == (99, [], [])


def test_behind_pgbouncer_over_the_hosts_share_is_refused():
    verdict = behind_pgbouncer(DB_CONNECTION_BUDGET=21)
    assert verdict.errors == [
        "worst case WEB_CONCURRENCY 2 × (DB_POOL_SIZE 5 + DB_MAX_OVERFLOW 5 + health probe 1)"
        " = 22 exceeds DB_CONNECTION_BUDGET 21"
    ]


def test_behind_pgbouncer_over_max_client_conn_is_refused():
    verdict = behind_pgbouncer({"max_client_conn": 20})
    assert verdict.errors == [
        "worst case WEB_CONCURRENCY 2 × (DB_POOL_SIZE 5 + DB_MAX_OVERFLOW 5 + health probe 1)"
        " = 22 exceeds PgBouncer's max_client_conn 20"
    ]


def test_behind_pgbouncer_a_pool_larger_than_the_server_warns():
    verdict = behind_pgbouncer({"default_pool_size": 95})
    assert verdict.errors == []
    assert verdict.warnings == [
        "PgBouncer pool_size 95 + reserve_pool_size 5 = 100 server connections to app exceed"
        " what the server can give: max_connections 100 − superuser_reserved_connections 3 = 97"
    ]


def test_behind_pgbouncer_a_queue_longer_than_the_pool_timeout_warns():
    for wait_s, shown in ((120, "120 s"), (0, "0 (no limit)")):
        verdict = behind_pgbouncer({"query_wait_timeout": wait_s})
        assert verdict.warnings == [
            f"PgBouncer's query_wait_timeout {shown} > DB_POOL_TIMEOUT 10 s + 1 s: a request"
            " may wait in PgBouncer's queue longer than the app promises"
        ]


def test_behind_pgbouncer_without_a_budget_or_a_console_only_warns():
    verdict = check_budget(
        settings(**BEHIND_PGBOUNCER), LIMITS, None, None, "PGBOUNCER_ADMIN_URL is unset"
    )
    assert verdict.errors == []
    assert verdict.warnings == [
        "DB_CONNECTION_BUDGET is unset: this host may open 22 client connections to PgBouncer;"
        " set it to PgBouncer's max_client_conn / the number of hosts",
        "PgBouncer's settings not checked: PGBOUNCER_ADMIN_URL is unset",
    ]
