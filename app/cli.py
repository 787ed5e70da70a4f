"""Operator commands: db-info, seed, create-admin, purge; and `flask shell`'s namespace."""

import functools
import json
import re
from datetime import datetime, timedelta
from typing import Any

import click
import marshmallow as ma
import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory
from flask import Flask
from flask.cli import with_appcontext

from app import models
from app.config import app_settings
from app.database import MIGRATIONS_DIR, health_probe, reading, transaction
from app.database.budget import assess_budget
from app.database.describe import unreachable
from app.database.health import health_report
from app.database.replicas import add_replicas, measure_now, replica_set
from app.database.timeouts import settings_warnings
from app.extensions import db
from app.models import ApiToken, IdempotencyKey
from app.models.base import utcnow
from app.models.benefit import code_is
from app.models.user import ADMIN
from app.schemas.user import EmailAddress, password_field
from app.security import find_user_by_email, hash_password

POOL_SETTINGS = (
    "DB_POOL_SIZE",
    "DB_MAX_OVERFLOW",
    "DB_POOL_TIMEOUT",
    "DB_POOL_RECYCLE",
    "DB_POOL_PRE_PING",
    "DB_CONNECT_TIMEOUT",
    "DB_STATEMENT_TIMEOUT",
    "DB_IDLE_IN_TRANSACTION_TIMEOUT",
    "DB_APPLICATION_NAME",
    "DB_CONNECTION_BUDGET",
    "DB_REPLICA_MAX_LAG_MS",
    "WEB_CONCURRENCY",
    "GUNICORN_THREADS",
)


# Alembic's own table, read directly: its MigrationContext logs at INFO on every command.
VERSION_TABLE = "alembic_version"


def needs_migrated_schema(command):
    """Run command only once the database is reachable and migrated; else stop with one line."""

    @functools.wraps(command)
    def checked(*args, **kwargs):
        if not schema_is_current():
            raise click.ClickException(
                "the database has no schema, or an old one: run flask db upgrade"
            )
        return command(*args, **kwargs)

    return checked


def schema_is_current() -> bool:
    """Whether the database is at the latest revision of migrations/."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    latest = set(ScriptDirectory.from_config(config).get_heads())
    try:
        with db.engine.connect() as connection:
            current = applied_revisions(connection)
    except sa.exc.OperationalError as error:
        raise click.ClickException(unreachable(db.engine.url, error)) from None
    return current == latest


def applied_revisions(connection: sa.Connection) -> set[str]:
    """The revisions Alembic's version table records (none: never migrated)."""
    if not sa.inspect(connection).has_table(VERSION_TABLE):
        return set()
    return set(connection.scalars(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")))


@click.command("db-info")
@with_appcontext
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def db_info(as_json: bool) -> None:
    """Print the database's health, the pool settings, the server's limits and the budget check."""
    info = collect_db_info()
    if as_json:
        click.echo(json.dumps(info, indent=2, default=str))
        return
    for section, values in info.items():
        click.echo(f"{section}:")
        for key, value in flatten(values):
            click.echo(f"  {key}: {as_text(value)}")
    if info["budget"]["errors"]:
        raise SystemExit(1)


def collect_db_info() -> dict[str, Any]:
    """Everything db-info prints, as one dictionary."""
    settings = app_settings()
    health, _ = health_report(health_probe(), db.engine, with_detail=True)
    if replica_set() is not None:
        measure_now(replica_set())
    add_replicas(health, with_hosts=True)
    budget, limits, limits_error = assess_budget(settings, health_probe().server_engine)
    return {
        "health": health,
        "settings": {name: settings.variable(name) for name in POOL_SETTINGS},
        "database": {"url": db.engine.url.render_as_string(hide_password=True)},
        "server": limits.__dict__ | {"available": limits.available, "free": limits.free}
        if limits
        else {"error": limits_error},
        "serverSettings": {"warnings": settings_warnings(health_probe().engine, settings)},
        "budget": {
            "worstCase": budget.worst_case,
            "arithmetic": budget.arithmetic,
            "errors": budget.errors,
            "warnings": budget.warnings,
        },
    }


def as_text(value: Any) -> str:
    """A value as an operator reads it: yes/no, unset, a list separated by semicolons."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "unset"
    if isinstance(value, list | tuple):
        # Semicolons: the items are often sentences with commas of their own (warnings).
        return "; ".join(as_text(each) for each in value) or "none"
    return str(value)


def flatten(values: Any, prefix: str = ""):
    """Yield (dotted key, value) pairs of nested dictionaries."""
    if not isinstance(values, dict):
        yield prefix, values
        return
    for key, value in values.items():
        yield from flatten(value, f"{prefix}.{key}" if prefix else str(key))


DEMO_SERVICES = (
    ("Home cleaning", "Two cleaners for three hours", 9000),
    ("Window washing", "Inside and out, up to ten windows", 4500),
    ("Carpet shampoo", "One room, deep clean", 6000),
)
# code, title, discount percent, the service it is limited to (None: every service)
DEMO_BENEFITS = (
    ("WELCOME10", "Welcome: 10% off any service", 10, None),
    ("WINDOWS25", "25% off window washing", 25, "Window washing"),
)


@click.command("seed")
@with_appcontext
@needs_migrated_schema
def seed() -> None:
    """Load demo services and benefits, idempotently: running it twice changes nothing."""
    with transaction() as session:
        services = sum(seed_service(session, *row) for row in DEMO_SERVICES)
        session.flush()
        benefits = sum(seed_benefit(session, *row) for row in DEMO_BENEFITS)
    click.echo(f"seed: {seed_summary(services, benefits)}")


def seed_summary(services: int, benefits: int) -> str:
    """What seed added, and whether some of the demo rows were there before."""
    if services == benefits == 0:
        return "nothing added; the demo services and benefits are already there"
    added = f"added {plural(services, 'service')} and {plural(benefits, 'benefit')}"
    if (services, benefits) == (len(DEMO_SERVICES), len(DEMO_BENEFITS)):
        return added
    return f"{added}; the others were already there"


def plural(count: int, noun: str) -> str:
    """count and noun, the noun in the plural unless count is 1."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def seed_service(session, name: str, description: str, price_cents: int) -> bool:
    """Add a demo service unless one has its name; return whether it was added."""
    if session.scalar(sa.select(models.Service.id).where(models.Service.name == name)):
        return False
    session.add(models.Service(name=name, description=description, price_cents=price_cents))
    return True


def seed_benefit(session, code: str, title: str, percent: int, service: str | None) -> bool:
    """Add a demo benefit unless its code is taken; return whether it was added."""
    taken = sa.select(models.Benefit.id).where(code_is(code))
    if session.scalar(taken):
        return False
    service_id = service and session.scalar(
        sa.select(models.Service.id).where(models.Service.name == service)
    )
    session.add(
        models.Benefit(code=code, title=title, discount_percent=percent, service_id=service_id)
    )
    return True


def as_the_api_takes(field: ma.fields.Field):
    """A click callback that loads a value as the API's field does, or refuses it."""

    def load(ctx, param, value: str | None):
        if value is None:
            return None
        try:
            return field.deserialize(value)
        except ma.ValidationError as error:
            raise click.BadParameter(" ".join(error.messages)) from None

    return load


@click.command("create-admin")
@click.argument("email", callback=as_the_api_takes(EmailAddress()))
@click.option("--password", callback=as_the_api_takes(password_field()), help="Else prompted.")
@click.option("--name", default=None, help="Display name of a new admin (default: from EMAIL).")
@click.option("--reset-password", is_flag=True, help="Replace an existing user's password too.")
@with_appcontext
@needs_migrated_schema
def create_admin(email: str, password: str | None, name: str | None, reset_password: bool) -> None:
    """Make EMAIL an admin: create the user, or promote an existing one, keeping its password."""
    with reading() as session:
        exists = find_user_by_email(session, email) is not None
    if exists and password is not None and not reset_password:
        raise click.UsageError(
            f"{email} exists and keeps its password: leave out --password, or add --reset-password"
        )
    if not exists or reset_password:
        password_hash = hash_password(password or prompt_for_password())
    with transaction() as session:
        user = find_user_by_email(session, email)
        if user is None:
            user = models.User(email=email, name=name or email.split("@")[0])
            session.add(user)
        user.role = ADMIN
        if not exists or reset_password:
            user.password_hash = password_hash
    click.echo(f"create-admin: {email} is an admin")


def prompt_for_password() -> str:
    """A new password, typed twice, that the API's rules accept (asked again until it is)."""
    load = as_the_api_takes(password_field())
    return click.prompt(
        "Password",
        hide_input=True,
        confirmation_prompt=True,
        value_proc=lambda value: load(None, None, value),
    )


class Duration(click.ParamType):
    """A length of time: a whole number and a unit, s, m, h or d (30d, 12h, 90m)."""

    name = "duration"
    SECONDS_PER_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}  # noqa: RUF012

    def convert(self, value, param, ctx) -> timedelta:
        """value as a timedelta, or a usage error that names the option."""
        if isinstance(value, timedelta):
            return value
        match = re.fullmatch(r"([0-9]{1,6})([smhd])", str(value).strip())
        if match is None:
            self.fail(f"{value!r} is not a duration such as 30d, 12h, 90m or 45s", param, ctx)
        return timedelta(seconds=int(match[1]) * self.SECONDS_PER_UNIT[match[2]])


def retention(name: str, help_text: str):
    """A --NAME option taking a Duration, a week unless given."""
    return click.option(name, type=Duration(), default="7d", show_default=True, help=help_text)


@click.command("purge")
@retention("--token-retention", "Keep a token this long after it expired or was revoked.")
@retention(
    "--idempotency-retention",
    "Keep an Idempotency-Key this long after its first use; a later retry is a new order.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 100_000),
    default=1000,
    show_default=True,
    help="Rows deleted per transaction.",
)
@with_appcontext
@needs_migrated_schema
def purge(token_retention: timedelta, idempotency_retention: timedelta, batch_size: int) -> None:
    """Delete expired or revoked tokens and old idempotency keys, a small batch at a time.

    Safe to run again, and beside another run: each batch locks only the rows it deletes
    and skips rows another transaction holds. Orders are never deleted.
    """
    now = utcnow()
    tokens = delete_in_batches(ApiToken, dead_tokens(now - token_retention), batch_size)
    keys = delete_in_batches(
        IdempotencyKey, IdempotencyKey.created_at < now - idempotency_retention, batch_size
    )
    click.echo(f"purge: deleted {tokens} tokens and {keys} idempotency keys")


def dead_tokens(before: datetime) -> sa.ColumnElement[bool]:
    """Tokens that expired, or were revoked, before this moment."""
    return sa.or_(ApiToken.expires_at < before, ApiToken.revoked_at < before)


def delete_in_batches(model, condition: sa.ColumnElement[bool], batch_size: int) -> int:
    """Delete the rows of model matching condition, batch_size per committed transaction.

    The oldest first (by id), each batch one short DELETE; rows locked by anyone else are
    skipped, to be deleted by a later run. Returns how many rows this run deleted.
    """
    chosen = (
        sa.select(model.id)
        .where(condition)
        .order_by(model.id)
        .limit(batch_size)
        .with_for_update(skip_locked=True)
    )
    statement = (
        sa.delete(model)
        .where(model.id.in_(chosen.scalar_subquery()))
        .execution_options(synchronize_session=False)
    )
    deleted = 0
    while True:
        with transaction() as session:
            batch = session.execute(statement).rowcount
        deleted += batch
        if batch < batch_size:
            return deleted


def shell_context() -> dict[str, Any]:
    """`flask shell` starts with db, sa, transaction and every model."""
    models_by_name = {name: getattr(models, name) for name in models.__all__}
    return {"db": db, "sa": sa, "transaction": transaction, **models_by_name}


def init_app(app: Flask) -> None:
    """Register the commands and the shell context."""
    app.cli.add_command(db_info)
    app.cli.add_command(seed)
    app.cli.add_command(create_admin)
    app.cli.add_command(purge)
    app.shell_context_processor(shell_context)
