"""Schemathesis fuzzes every operation of /api/openapi.json, signed in: against the app, and
through the shipped nginx in front of real gunicorn.

Deterministic: hypothesis is derandomized and keeps no example database, so every run
generates the same cases. The terminal summary quotes how many ran.
"""

import itertools

import pytest
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

from app import create_app
from app.database import dispose_engines, transaction
from app.models import User
from app.models.user import ADMIN
from app.security import issue_token
from tests import fuzzing
from tests.conftest import TEST_SETTINGS, password_hash
from tests.servers import GunicornServer, NginxServer, client_from

FUZZ_ADMIN = "fuzz-admin@example.com"
EXAMPLES_PER_OPERATION = 40
NGINX_EXAMPLES_PER_OPERATION = 8  # Real HTTP through two servers: a quicker pass.
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
]


class FreshAdminToken:
    """The auth hook: a new admin token for every case, so a fuzzed logout signs out no other."""

    app = None  # The app whose database holds the tokens; the schema's own app when None.

    def get(self, case, context):
        """Issue a token for the fuzzing admin, creating the admin on first use."""
        with (self.app or context.app).app_context(), transaction() as session:
            admin = session.scalar(sa.select(User).where(User.email == FUZZ_ADMIN))
            if admin is None:
                admin = User(email=FUZZ_ADMIN, name="Fuzz", password_hash=password_hash())
                admin.role = ADMIN
                session.add(admin)
                session.flush()
            token, _ = issue_token(session, admin)
        return token

    def set(self, case, token, context):
        """Send the token as a bearer token."""
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}


def fuzz(operation, mode: GenerationMode, auth, examples=EXAMPLES_PER_OPERATION, session=None):
    """Run examples generated cases of one operation through every check.

    session: a callable giving the requests session for each case (the schema's own if None).
    """

    @given(case=operation.as_strategy(mode, auth_storage=auth))
    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case):
        fuzzing.stats["cases"] += 1
        response = case.call_and_validate(checks=CHECKS, session=session and session())
        fuzzing.statuses[f"{response.status_code // 100}xx"] += 1

    run()


def modes_for(operation) -> list[GenerationMode]:
    """Valid input always; invalid input too where the operation takes any input."""
    takes_input = any(
        len(parameters)
        for parameters in (operation.path_parameters, operation.query, operation.headers)
    ) or bool(operation.body)
    return [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if takes_input else [])


def fuzz_every_operation(schema, **options) -> list[str]:
    """Fuzz each operation in each of its modes; one line per operation that failed."""
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in modes_for(operation):
            try:
                fuzz(operation, mode, schema.auth, **options)
            except (Exception, BaseExceptionGroup) as error:  # Report every operation's.
                failures.append(f"{mode.value} {operation.label}: {error}")
    fuzzing.stats["failures"] += len(failures)
    return failures


def test_every_operation_conforms_and_never_fails_with_500(app):
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    schema.auth(refresh_interval=None)(FreshAdminToken)
    failures = fuzz_every_operation(schema)
    assert failures == [], "\n\n".join(failures)


@pytest.mark.process
def test_through_nginx_every_operation_conforms_and_every_error_is_json(server_database_url):
    env = {"DATABASE_URL": server_database_url, "WEB_CONCURRENCY": "2", "TRUSTED_PROXY_HOPS": "1"}
    server_app = create_app({**TEST_SETTINGS, "DATABASE_URL": server_database_url})
    # Cases come from ten addresses in turn, as from ten clients: one would meet nginx's
    # per-client request rate, which the API document cannot describe.
    clients = itertools.cycle([client_from(f"127.0.0.{50 + n}") for n in range(10)])
    with GunicornServer(env) as gunicorn, NginxServer(f"127.0.0.1:{gunicorn.port}") as nginx:
        schema = schemathesis.openapi.from_url(nginx.url + "/api/openapi.json")
        auth = type("ServerAdminToken", (FreshAdminToken,), {"app": server_app})
        schema.auth(refresh_interval=None)(auth)
        failures = fuzz_every_operation(
            schema, examples=NGINX_EXAMPLES_PER_OPERATION, session=lambda: next(clients)
        )
    dispose_engines(server_app, close=True)
    assert failures == [], "\n\n".join(failures)
