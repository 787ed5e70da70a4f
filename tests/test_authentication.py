"""OWASP API2: every non-public route refuses a missing, malformed, expired or revoked token."""

from datetime import timedelta

import pytest

from app.database import transaction
from app.models import ApiToken
from app.models.base import utcnow
from app.models.user import ADMIN
from app.security import token_digest
from tests.conftest import make_caller

PUBLIC = {
    ("/api/health", "GET"),
    ("/api/health/live", "GET"),
    ("/api/auth/register", "POST"),
    ("/api/auth/login", "POST"),
    ("/api/services", "GET"),
    ("/api/services/<id:service_id>", "GET"),
    ("/api/benefits", "GET"),
    ("/api/benefits/<id:benefit_id>", "GET"),
    ("/api/openapi.json", "GET"),
    ("/api/docs", "GET"),
    ("/api/docs/assets/<path:filename>", "GET"),
}
IGNORED_METHODS = {"HEAD", "OPTIONS"}


def protected_routes(app) -> list[tuple[str, str]]:
    """(url, method) of every rule and method in app.url_map that is not public."""
    adapter = app.url_map.bind("localhost")
    routes = []
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - IGNORED_METHODS):
            if (rule.rule, method) not in PUBLIC and rule.endpoint != "static":
                url = adapter.build(rule.endpoint, {name: 1 for name in rule.arguments})
                routes.append((url, method))
    return routes


def test_the_protected_set_is_every_signed_in_and_admin_route(app):
    assert set(protected_routes(app)) == {
        ("/api/auth/logout", "POST"),
        ("/api/auth/logout-all", "POST"),
        ("/api/user/profile", "GET"),
        ("/api/user/profile", "PATCH"),
        ("/api/orders", "GET"),
        ("/api/orders", "POST"),
        *{("/api/orders/1", method) for method in ("GET", "PUT", "PATCH", "DELETE")},
        *{(f"/api/{name}", "POST") for name in ("services", "benefits")},
        *{
            (f"/api/{name}/1", method)
            for name in ("services", "benefits")
            for method in ("PUT", "PATCH", "DELETE")
        },
    }


def stored_token(app, customer, **fields) -> str:
    """A token of customer stored with the given fields (an expiry, a revocation)."""
    token = "t" * 43 + str(len(fields)) + "".join(sorted(fields))
    with app.app_context(), transaction() as session:
        session.add(ApiToken(user_id=customer.id, token_hash=token_digest(token), **fields))
    return token


@pytest.fixture
def bad_authorizations(app, customer) -> dict[str, str | None]:
    """Authorization headers that must all be refused, by what is wrong with them."""
    expired = stored_token(app, customer, expires_at=utcnow() - timedelta(seconds=1))
    revoked = stored_token(
        app, customer, expires_at=utcnow() + timedelta(days=1), revoked_at=utcnow()
    )
    return {
        "missing": None,
        "empty": "",
        "scheme only": "Bearer",
        "wrong scheme": f"Basic {customer.token}",
        "malformed": "Bearer not a token!",
        "unknown": "Bearer " + "x" * 43,
        "expired": f"Bearer {expired}",
        "revoked": f"Bearer {revoked}",
    }


def test_every_protected_route_refuses_bad_tokens(app, client, bad_authorizations):
    refused = []
    for url, method in protected_routes(app):
        for what, authorization in bad_authorizations.items():
            headers = {"Authorization": authorization} if authorization is not None else {}
            response = client.open(url, method=method, headers=headers, json={})
            if response.status_code != 401 or response.json["error"]["code"] != "unauthorized":
                refused.append((method, url, what, response.status_code))
            assert response.headers.get("WWW-Authenticate") == "Bearer"
    assert refused == []


def test_the_same_routes_accept_a_live_token(app, client, admin):
    for url, method in protected_routes(app):
        # Signing out revokes the token it presents: each sign-out gets a token of its own.
        caller = make_caller(app, ADMIN) if url.startswith("/api/auth/logout") else admin
        response = client.open(url, method=method, headers=caller.headers, json={})
        assert response.status_code != 401, (method, url)
