"""flask seed, flask create-admin, and flask shell's namespace."""

import sqlalchemy as sa

from app import models
from app.cli import DEMO_BENEFITS, DEMO_SERVICES, shell_context
from app.extensions import db
from app.models import Benefit, Service, User
from tests.conftest import PASSWORD


def count(app, model) -> int:
    """How many rows model's table has."""
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def test_seed_loads_services_and_benefits_once(app, runner):
    first = runner.invoke(args=["seed"])
    assert first.exit_code == 0, first.output
    again = runner.invoke(args=["seed"])
    assert again.exit_code == 0
    assert "nothing added" in again.output
    assert count(app, Service) == len(DEMO_SERVICES)
    assert count(app, Benefit) == len(DEMO_BENEFITS)


def test_seeded_benefits_name_their_service(app, runner):
    runner.invoke(args=["seed"])
    with app.app_context():
        windows = db.session.scalar(sa.select(Benefit).where(Benefit.code == "WINDOWS25"))
        assert db.session.get(Service, windows.service_id).name == "Window washing"


def role_of(app, email) -> str | None:
    """The role of the user with this email, if there is one."""
    with app.app_context():
        return db.session.scalar(sa.select(User.role).where(User.email == email))


def test_create_admin_makes_a_new_admin_who_can_sign_in(app, runner, auth):
    result = runner.invoke(args=["create-admin", "boss@example.com", "--password", PASSWORD])
    assert result.exit_code == 0, result.output
    assert role_of(app, "boss@example.com") == "admin"
    assert auth.login("boss@example.com").status_code == 200


def test_create_admin_promotes_an_existing_user_keeping_the_password(app, runner, auth, customer):
    result = runner.invoke(args=["create-admin", customer.email.upper()])
    assert result.exit_code == 0, result.output
    assert role_of(app, customer.email) == "admin"
    assert auth.login(customer.email).status_code == 200


def test_create_admin_replaces_an_existing_password_only_when_told(app, runner, auth, customer):
    other = "another long password"
    refused = runner.invoke(args=["create-admin", customer.email, "--password", other])
    assert refused.exit_code == 2 and "--reset-password" in refused.output
    assert role_of(app, customer.email) == "customer"
    assert auth.login(customer.email).status_code == 200
    reset = ["create-admin", customer.email, "--password", other, "--reset-password"]
    assert runner.invoke(args=reset).exit_code == 0
    assert auth.login(customer.email, other).status_code == 200


def test_create_admin_prompts_for_the_password(app, runner):
    result = runner.invoke(
        args=["create-admin", "p@example.com"], input=f"{PASSWORD}\n{PASSWORD}\n"
    )
    assert result.exit_code == 0, result.output
    assert role_of(app, "p@example.com") == "admin"


def test_create_admin_refuses_bad_input(app, runner):
    assert runner.invoke(args=["create-admin", "nobody", "--password", PASSWORD]).exit_code == 2
    short = runner.invoke(args=["create-admin", "s@example.com", "--password", "short"])
    assert short.exit_code == 2
    assert "Length must be between 8 and 128" in short.output, "the API's own rule"
    assert role_of(app, "s@example.com") is None


def test_shell_has_db_and_every_model():
    namespace = shell_context()
    assert namespace["db"] is db
    assert set(models.__all__) == {
        "ApiToken", "Benefit", "IdempotencyKey", "Order", "Service", "User"
    }  # fmt: skip
    assert all(namespace[name] is getattr(models, name) for name in models.__all__)
