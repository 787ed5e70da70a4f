"""Operator commands: `flask db-info`, and what `flask shell` has at hand."""

import json
from typing import Any

import click
import sqlalchemy as sa
from flask import Flask, current_app
from flask.cli import with_appcontext

from app import models
from app.database import health_probe, transaction
from app.database.budget import check_budget, fetch_server_limits
from app.database.health import health_report
from app.extensions import db

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
    "WEB_CONCURRENCY",
    "GUNICORN_THREADS",
)


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
            click.echo(f"  {key}: {value}")
    if info["budget"]["errors"]:
        raise SystemExit(1)


def collect_db_info() -> dict[str, Any]:
    """Everything db-info prints, as one dictionary."""
    config = current_app.config
    health, _ = health_report(health_probe(), db.engine)
    limits, limits_error = fetch_server_limits(health_probe().engine)
    budget = check_budget(config, limits, limits_error)
    return {
        "health": health,
        "settings": {name: config[name] for name in POOL_SETTINGS},
        "database": {"url": db.engine.url.render_as_string(hide_password=True)},
        "server": limits.__dict__ | {"available": limits.available, "free": limits.free}
        if limits
        else {"error": limits_error},
        "budget": {
            "worstCase": budget.worst_case,
            "arithmetic": budget.arithmetic,
            "errors": budget.errors,
            "warnings": budget.warnings,
        },
    }


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


@click.command("seed")
@with_appcontext
def seed() -> None:
    """Load demo services, idempotently: running it twice changes nothing."""
    added = 0
    with transaction() as session:
        for name, description, price_cents in DEMO_SERVICES:
            if session.scalar(sa.select(models.Service.id).where(models.Service.name == name)):
                continue
            session.add(models.Service(name=name, description=description, price_cents=price_cents))
            added += 1
    click.echo(f"seed: {added} services added, {len(DEMO_SERVICES) - added} already there")


def shell_context() -> dict[str, Any]:
    """`flask shell` starts with db, sa and every model."""
    return {"db": db, "sa": sa, **{name: getattr(models, name) for name in models.__all__}}


def init_app(app: Flask) -> None:
    """Register the commands and the shell context."""
    app.cli.add_command(db_info)
    app.cli.add_command(seed)
    app.shell_context_processor(shell_context)
