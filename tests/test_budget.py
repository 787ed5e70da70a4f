"""The budget arithmetic, verdict by verdict."""

from app.config import load_settings
from app.database.budget import ServerLimits, check_budget

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
