"""The usual unit of work is atomic wherever it is written: views, commands, `flask shell`."""

import os
import subprocess
import sys
import textwrap

import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from app.extensions import db
from app.models import Benefit, Service
from tests import pg
from tests.conftest import TEST_SETTINGS
from tests.servers import ROOT

GOOD = {"name": "Window cleaning", "description": "", "price_cents": 1500}
BAD = {"name": "Refund machine", "description": "", "price_cents": -1}


def count(app, model) -> int:
    """Rows of model's table, read on a connection of their own."""
    with app.app_context(), db.engine.connect() as connection:
        return connection.scalar(sa.select(sa.func.count()).select_from(model))


def commit_fails(session) -> None:
    """Commit, which the bad row makes fail, then roll back as a user would."""
    with pytest.raises(sa_exc.IntegrityError):
        session.commit()
    session.rollback()


def test_a_flushed_row_is_undone_when_a_later_one_fails(app):
    with app.app_context():
        db.session.add(Service(**GOOD))
        db.session.flush()
        db.session.add(Service(**BAD))
        commit_fails(db.session)
    assert count(app, Service) == 0


def test_an_autoflush_before_a_query_is_undone_too(app):
    with app.app_context():
        db.session.add(Benefit(code="SPRING", title="Spring", discount_percent=10))
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Benefit)) == 1
        db.session.add(Service(**BAD))
        commit_fails(db.session)
    assert count(app, Benefit) == 0


def test_rows_commit_together_and_reads_go_back_to_autocommit(app):
    with app.app_context():
        db.session.add(Service(**GOOD))
        db.session.flush()
        db.session.add(Benefit(code="SPRING", title="Spring", discount_percent=10))
        db.session.commit()
        with db.engine.connect() as connection:
            dbapi_connection = connection.connection.dbapi_connection
            assert dbapi_connection.autocommit  # The pool's next read is one statement.
        db.session.remove()
    assert (count(app, Service), count(app, Benefit)) == (1, 1)


def test_nothing_is_left_idle_in_transaction_after_a_failed_unit(app):
    with app.app_context():
        db.session.add(Service(**GOOD))
        db.session.flush()
        db.session.add(Service(**BAD))
        with pytest.raises(sa_exc.IntegrityError):
            db.session.flush()
        db.session.remove()  # As teardown does, without the rollback a user would call.
    states = [state for _pid, state, _name in pg.our_backends("app")]
    assert "idle in transaction" not in states
    assert "idle in transaction (aborted)" not in states
    assert count(app, Service) == 0


@pytest.mark.process
def test_flask_shell_rolls_back_the_whole_unit(database_url):
    # Typed as at the prompt: a blank line ends each block.
    session = textwrap.dedent(
        f"""
        db.session.add(Service(**{GOOD!r}))
        db.session.flush()
        db.session.add(Service(**{BAD!r}))
        try:
            db.session.commit()
        except sa.exc.IntegrityError:
            db.session.rollback()
            print("refused")

        print("services:", db.session.scalar(sa.select(sa.func.count()).select_from(Service)))
        with transaction() as unit:
            unit.add(Service(**{GOOD!r}))

        print("services:", db.session.scalar(sa.select(sa.func.count()).select_from(Service)))
        """
    )
    environment = {
        **os.environ,
        "FLASK_APP": "wsgi",
        "DATABASE_URL": database_url,
        "SECRET_KEY": TEST_SETTINGS["SECRET_KEY"],
    }
    shell = subprocess.run(
        [sys.executable, "-m", "flask", "shell"],
        input=session,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environment,
        timeout=60,
    )
    assert shell.returncode == 0, shell.stderr[-2000:]
    printed = [line.lstrip(">. ") for line in shell.stdout.splitlines()]
    assert [line for line in printed if line] == ["refused", "services: 0", "services: 1"]
    pg.admin_execute("TRUNCATE services CASCADE", dsn=database_url)


def test_an_update_through_the_session_is_undone_with_the_rest(app):
    with app.app_context():
        db.session.add(Service(**GOOD))
        db.session.commit()
        db.session.execute(sa.update(Service).values(price_cents=1))
        db.session.add(Service(**BAD))
        commit_fails(db.session)
        db.session.remove()
    with app.app_context():
        assert db.session.scalar(sa.select(Service.price_cents)) == GOOD["price_cents"]
