"""One blueprint per resource, registered on the OpenAPI-aware Api, and the docs page."""

from importlib.resources import files

from flask import Blueprint, Flask, Response, request
from flask_smorest import Api

from app.api import auth, benefits, health, orders, services, users
from app.api.access import BEARER_SCHEME
from app.api.blueprint import register_id_converter
from app.api.body import require_small_json_body

RESOURCES = (health, auth, users, services, benefits, orders)
SWAGGER_UI_ASSETS = files("flask_swagger_ui") / "dist"
DOCS_ASSETS_URL = "/api/docs/assets"


def register_blueprints(app: Flask, api: Api) -> None:
    """Register every resource's blueprint, the bearer scheme and the offline docs assets."""
    api.spec.components.security_scheme(
        BEARER_SCHEME, {"type": "http", "scheme": "bearer", "description": "POST /api/auth/login"}
    )
    register_id_converter(app, api)
    for module in RESOURCES:
        api.register_blueprint(module.blp)
    app.register_blueprint(docs_assets())
    app.before_request(require_small_json_body)
    app.after_request(options_answer_204)


def options_answer_204(response: Response) -> Response:
    """OPTIONS answers 204 with its Allow header, not Flask's empty text/html 200."""
    if request.method == "OPTIONS" and response.status_code == 200 and not response.get_data():
        response.status_code = 204
        del response.headers["Content-Type"]
    return response


def docs_assets() -> Blueprint:
    """Swagger UI's files, served from the pip package so the docs page works offline."""
    return Blueprint(
        "docs_assets",
        __name__,
        static_folder=str(SWAGGER_UI_ASSETS),
        static_url_path=DOCS_ASSETS_URL,
    )
