"""Plain Flask: CORS answers only the configured origins, and no response sets a cookie."""

import pytest

from app import create_app

SQLITE_SETTINGS = {"DATABASE_URL": "sqlite://", "SECRET_KEY": "x"}


@pytest.mark.parametrize(
    ("origins", "allowed"), [("", None), ("https://a.example", "https://a.example")]
)
def test_cors_answers_only_the_configured_origins(origins, allowed):
    app = create_app({**SQLITE_SETTINGS, "CORS_ORIGINS": origins})
    response = app.test_client().get("/api/health/live", headers={"Origin": "https://a.example"})
    assert response.headers.get("Access-Control-Allow-Origin") == allowed


def test_no_response_sets_a_cookie(client, auth, customer):
    """Bearer tokens say who is calling: signing in, reading and failing set no cookie."""
    responses = [
        auth.login(customer.email),
        client.get("/api/user/profile", headers=customer.headers),
        client.get("/api/services/424242"),
    ]
    assert [response.headers.get("Set-Cookie") for response in responses] == [None] * 3
