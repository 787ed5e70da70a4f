"""flask purge: dead tokens and old idempotency keys go, in batches; live rows and orders stay."""

import os
import subprocess
import sys
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app import create_app
from app.database import dispose_engines, transaction
from app.extensions import db
from app.models import ApiToken, IdempotencyKey, Order, User
from app.models.base import utcnow
from tests.conftest import add_row, password_hash
from tests.servers import ROOT
from tests.test_services import order_row

DAY = timedelta(days=1)
RACING_TOKENS = 10_000
EXPIRED_TOKENS = sa.text(
    "INSERT INTO api_tokens (user_id, token_hash, created_at, expires_at)"
    " SELECT :user_id, 'race-' || n, now(), now() - interval '30 days'"
    " FROM generate_series(1, :count) AS n"
)


def add_user(app, email: str) -> int:
    """A customer, straight in the database; return their id."""
    return add_row(app, User(email=email, name="Purge", password_hash=password_hash()))


def add_tokens(app, user_id: int) -> dict[str, int]:
    """Tokens in every state, by name; return their ids."""
    now = utcnow()
    states = {
        "live": {"expires_at": now + DAY},
        "expired long ago": {"expires_at": now - 10 * DAY},
        "expired lately": {"expires_at": now - DAY},
        "revoked long ago": {"expires_at": now + DAY, "revoked_at": now - 10 * DAY},
        "revoked lately": {"expires_at": now + DAY, "revoked_at": now - DAY},
    }
    return {
        name: add_row(app, ApiToken(user_id=user_id, token_hash=f"{user_id}-{name}", **times))
        for name, times in states.items()
    }


def add_keys(app, user_id: int, service_id: int, ages: dict[str, timedelta]) -> dict[str, int]:
    """One order per key, each key created ages[name] ago; return the keys' ids."""
    ids = {}
    for name, age in ages.items():
        key = IdempotencyKey(
            user_id=user_id,
            key=name,
            request_fingerprint="f" * 64,
            order=order_row(user_id, service_id),
            created_at=utcnow() - age,
        )
        ids[name] = add_row(app, key)
    return ids


def remaining(app, model, ids) -> set[int]:
    """Which of ids are still rows of model."""
    with app.app_context():
        return set(db.session.scalars(sa.select(model.id).where(model.id.in_(ids))))


def count(app, model) -> int:
    """How many rows model has."""
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def test_purge_deletes_dead_tokens_and_old_keys_only(app, runner, service_id):
    user_id = add_user(app, "purged@example.com")
    tokens = add_tokens(app, user_id)
    keys = add_keys(app, user_id, service_id, {"old": 10 * DAY, "new": DAY})
    orders = count(app, Order)

    result = runner.invoke(args=["purge"])

    assert result.exit_code == 0, result.output
    assert result.output == "purge: deleted 2 tokens and 1 idempotency keys\n"
    kept = {tokens[name] for name in ("live", "expired lately", "revoked lately")}
    assert remaining(app, ApiToken, tokens.values()) == kept
    assert remaining(app, IdempotencyKey, keys.values()) == {keys["new"]}
    assert count(app, Order) == orders


def test_purge_twice_deletes_nothing_the_second_time(app, runner, service_id):
    user_id = add_user(app, "twice@example.com")
    add_tokens(app, user_id)
    add_keys(app, user_id, service_id, {"old": 10 * DAY})
    runner.invoke(args=["purge"])
    result = runner.invoke(args=["purge"])
    assert result.output == "purge: deleted 0 tokens and 0 idempotency keys\n"


def test_retentions_and_batch_size_are_options(app, runner, service_id):
    user_id = add_user(app, "options@example.com")
    tokens = add_tokens(app, user_id)
    add_keys(app, user_id, service_id, {f"key-{n}": timedelta(hours=2) for n in range(5)})
    args = ["purge", "--token-retention", "0s", "--idempotency-retention", "1h"]
    result = runner.invoke(args=[*args, "--batch-size", "2"])
    assert result.output == "purge: deleted 4 tokens and 5 idempotency keys\n"
    assert remaining(app, ApiToken, tokens.values()) == {tokens["live"]}


@pytest.mark.parametrize("option", ["--token-retention", "--idempotency-retention"])
@pytest.mark.parametrize("value", ["7", "7 days", "-1d", "1w", "٣d"])
def test_a_retention_that_is_not_a_duration_is_a_usage_error(runner, option, value):
    result = runner.invoke(args=["purge", option, value])
    assert result.exit_code == 2
    assert "is not a duration such as 30d" in result.output


@pytest.mark.process
def test_two_purges_at_once_delete_each_row_once(server_database_url):
    app = create_app({"DATABASE_URL": server_database_url, "SECRET_KEY": "test"})
    try:
        user_id = add_user(app, "racing@example.com")
        with app.app_context(), transaction() as session:
            session.execute(EXPIRED_TOKENS, {"user_id": user_id, "count": RACING_TOKENS})
        env = {**os.environ, "DATABASE_URL": server_database_url, "SECRET_KEY": "test"}
        command = [sys.executable, "-m", "flask", "purge", "--batch-size", "10"]
        runs = [
            subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        outputs = [run.communicate(timeout=60)[0] for run in runs]
        assert [run.returncode for run in runs] == [0, 0], outputs
        assert sum(int(output.split()[2]) for output in outputs) == RACING_TOKENS, outputs
        assert count(app, ApiToken) == 0
    finally:
        dispose_engines(app, close=True)
