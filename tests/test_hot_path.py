"""What hot_path leaves out is work, never behaviour: CORS and sessions still hold."""

import flask
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
