"""Schemathesis fuzzes every operation of /api/openapi.json against the app, signed in.

Deterministic: hypothesis is derandomized and keeps no example database, so every run
generates the same cases. The terminal summary quotes how many ran.
"""

import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.database import transaction
from app.models import User
from app.models.user import ADMIN
from app.security import issue_token
from tests import fuzzing
from tests.conftest import password_hash

FUZZ_ADMIN = "fuzz-admin@example.com"
EXAMPLES_PER_OPERATION = 40
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
]


class FreshAdminToken:
    """The auth hook: a new admin token for every case, so a fuzzed logout signs out no other."""

    def get(self, case, context):
        """Issue a token for the fuzzing admin, creating the admin on first use."""
        with context.app.app_context(), transaction() as session:
            admin = session.scalar(sa.select(User).where(User.email == FUZZ_ADMIN))
            if admin is None:
                admin = User(email=FUZZ_ADMIN, name="Fuzz", password_hash=password_hash())
                admin.role = ADMIN
                session.add(admin)
            token, _ = issue_token(session, admin)
        return token

    def set(self, case, token, context):
        """Send the token as a bearer token."""
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}


def fuzz(operation, mode: GenerationMode, auth) -> None:
    """Run EXAMPLES_PER_OPERATION generated cases of one operation through every check."""

    @given(case=operation.as_strategy(mode, auth_storage=auth))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case):
        fuzzing.stats["cases"] += 1
        response = case.call_and_validate(checks=CHECKS)
        fuzzing.statuses[f"{response.status_code // 100}xx"] += 1

    run()


def modes_for(operation) -> list[GenerationMode]:
    """Valid input always; invalid input too where the operation takes any input."""
    takes_input = any(
        len(parameters)
        for parameters in (operation.path_parameters, operation.query, operation.headers)
    ) or bool(operation.body)
    return [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if takes_input else [])


def test_every_operation_conforms_and_never_fails_with_500(app):
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    schema.auth(refresh_interval=None)(FreshAdminToken)
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in modes_for(operation):
            try:
                fuzz(operation, mode, schema.auth)
            except (Exception, BaseExceptionGroup) as error:  # Report every operation's.
                failures.append(f"{mode.value} {operation.label}: {error}")
    fuzzing.stats["failures"] = len(failures)
    assert failures == [], "\n\n".join(failures)
