"""The ordering service: a Flask app that never exhausts its database's connections."""

import os
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from app import cli, database, errors, metrics, rate_limits, request_context, request_log
from app.api import DOCS_ASSETS_URL, ReadAfterLsnDocs, register_blueprints
from app.config import INSTANCE_DIR, SETTINGS_EXTENSION, app_settings, load_settings
from app.extensions import api, cors
from app.json_provider import OrjsonProvider

MAX_BODY_BYTES = 1024 * 1024
# Response headers a browser client must read: versions for If-Match, retries, replays, the
# request id to quote in a support request, and the position its next reads must see.
EXPOSED_HEADERS = [
    "ETag",
    "Location",
    "Retry-After",
    "Idempotent-Replayed",
    "X-Request-ID",
    "X-Read-After-LSN",
]
# What Flask, Flask-SQLAlchemy and flask-smorest read from app.config: the same in every
# deployment, so constants here rather than variables of app/config.py.
FLASK_CONSTANTS = {
    "MAX_CONTENT_LENGTH": MAX_BODY_BYTES,
    "SQLALCHEMY_TRACK_MODIFICATIONS": False,
    "API_TITLE": "Ordering service",
    "API_VERSION": "1.0.0",
    "OPENAPI_VERSION": "3.0.3",
    "OPENAPI_URL_PREFIX": "/api",
    "OPENAPI_JSON_PATH": "openapi.json",
    "OPENAPI_SWAGGER_UI_PATH": "docs",
    "OPENAPI_SWAGGER_UI_URL": DOCS_ASSETS_URL + "/",
}


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app from the environment; test_config overrides any variable."""
    app = Flask(__name__, instance_path=str(INSTANCE_DIR), static_folder=None)
    app.json = OrjsonProvider(app)
    # `/api//orders` is a 404 like any unknown path, not a redirect werkzeug writes in HTML.
    app.url_map.merge_slashes = False
    configure(app, test_config or {})
    request_context.init_app(app)
    request_log.init_app(app)
    metrics.init_app(app)
    database.init_app(app)
    register_extensions(app)
    register_blueprints(app, api)
    errors.init_app(app)
    cli.init_app(app)
    trust_proxies(app)
    return app


def configure(app: Flask, overrides: dict[str, Any]) -> None:
    """Load the validated Settings from the environment and overrides, then Flask's constants."""
    settings = load_settings({**os.environ, **overrides})
    app.extensions[SETTINGS_EXTENSION] = settings
    app.config.update(FLASK_CONSTANTS, SECRET_KEY=settings.secret_key)
    os.makedirs(app.instance_path, exist_ok=True)


def register_extensions(app: Flask) -> None:
    """Bind the HTTP-facing extensions."""
    api.init_app(app, spec_kwargs={"extra_plugins": [ReadAfterLsnDocs()]})
    rate_limits.init_app(app)
    origins = app_settings(app).cors_origins
    if origins:  # With no origin allowed, flask-cors would only cost time.
        cors.init_app(
            app,
            resources={r"/api/*": {"origins": list(origins)}},
            expose_headers=EXPOSED_HEADERS,
        )


def trust_proxies(app: Flask) -> None:
    """Believe X-Forwarded-For and -Proto from TRUSTED_PROXY_HOPS proxies, and no further."""
    hops = app_settings(app).trusted_proxy_hops
    if hops:  # Without a proxy in front, those headers are whatever the client wrote.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)
