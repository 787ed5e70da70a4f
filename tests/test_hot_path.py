"""What hot_path leaves out is work, never behaviour: limits, CORS and sessions still hold."""

import flask
import pytest

from app import create_app, hot_path
from app.extensions import limiter

SQLITE_SETTINGS = {"DATABASE_URL": "sqlite://", "SECRET_KEY": "x"}


def test_a_decorated_rate_limit_still_applies():
    app = create_app(SQLITE_SETTINGS)

    @limiter.limit("2/minute")
    def limited():
        return {"ok": True}

    app.add_url_rule("/test/limited", "limited", limited)
    client = app.test_client()
    responses = [client.get("/test/limited") for _ in range(3)]
    assert [response.status_code for response in responses] == [200, 200, 429]
    # The response hooks still run where a limit was checked: they set these headers.
    assert responses[0].headers["X-RateLimit-Limit"] == "2"
    assert responses[1].headers["X-RateLimit-Remaining"] == "0"


def test_requests_without_limits_skip_the_limiter_response_hooks():
    app = create_app(SQLITE_SETTINGS)
    hooks = [*app.after_request_funcs[None], *app.teardown_request_funcs[None]]
    assert not any(hot_path.owned_by_limiter(hook) for hook in hooks)
    response = app.test_client().get("/api/health/live")
    assert response.status_code == 200
    assert "X-RateLimit-Limit" not in response.headers


def test_the_limiter_hooks_stay_when_its_state_is_not_where_we_look(monkeypatch):
    monkeypatch.setattr(hot_path, "LIMITER_STATE", "_moved_elsewhere")
    app = create_app(SQLITE_SETTINGS)
    hooks = [*app.after_request_funcs[None], *app.teardown_request_funcs[None]]
    assert sum(hot_path.owned_by_limiter(hook) for hook in hooks) == 2


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


def test_ensure_sync_answers_as_flask_does_and_remembers():
    app = create_app(SQLITE_SETTINGS)
    app.async_to_sync = lambda func: ("wrapped", func)

    def plain():
        return None

    async def coroutine():
        return None

    class View:
        async def get(self):
            return None

    for _ in range(2):  # Asked, then remembered.
        assert app.ensure_sync(plain) is plain
        assert app.ensure_sync(coroutine) == ("wrapped", coroutine)
        method = View().get
        assert app.ensure_sync(method) == ("wrapped", method)
    assert flask.Flask.ensure_sync(app, plain) is plain
