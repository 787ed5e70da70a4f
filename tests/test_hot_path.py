"""What hot_path leaves out is work, never behaviour: limits, CORS and sessions still hold."""

import flask
import pytest

from app import create_app
from app.extensions import limiter

SQLITE_SETTINGS = {"DATABASE_URL": "sqlite://", "SECRET_KEY": "x"}


def test_a_decorated_rate_limit_still_applies():
    app = create_app(SQLITE_SETTINGS)

    @limiter.limit("2/minute")
    def limited():
        return {"ok": True}

    app.add_url_rule("/test/limited", "limited", limited)
    client = app.test_client()
    statuses = [client.get("/test/limited").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_the_app_wide_check_stays_when_there_are_default_limits():
    app = create_app({**SQLITE_SETTINGS, "RATELIMIT_DEFAULT": "2/minute"})
    try:
        statuses = [app.test_client().get("/api/health/live").status_code for _ in range(3)]
    finally:
        limiter.limit_manager.set_default_limits([])
    assert statuses == [200, 200, 429]


@pytest.mark.parametrize(
    ("origins", "allowed"), [("", None), ("https://a.example", "https://a.example")]
)
def test_cors_answers_only_the_configured_origins(origins, allowed):
    app = create_app({**SQLITE_SETTINGS, "CORS_ORIGINS": origins})
    response = app.test_client().get("/api/health/live", headers={"Origin": "https://a.example"})
    assert response.headers.get("Access-Control-Allow-Origin") == allowed


def test_no_request_opens_or_sets_a_cookie_session():
    app = create_app(SQLITE_SETTINGS)

    def writes_session():
        flask.session["user"] = 1
        return {}

    app.add_url_rule("/test/session", "session", writes_session)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    response = app.test_client().get("/test/session")
    assert response.status_code == 500
    assert "Set-Cookie" not in response.headers
