"""One blueprint per resource, registered on the OpenAPI-aware Api, and the docs page."""

from importlib.resources import files

from apispec import BasePlugin
from flask import Blueprint, Flask, Response, request
from flask_smorest import Api

from app.api import auth, benefits, health, orders, services, users
from app.api.access import BEARER_SCHEME
from app.api.blueprint import register_id_converter
from app.api.body import read_the_rest_after_answering, require_small_json_body
from app.config import app_settings
from app.database.replicas import LSN_PATTERN, READ_AFTER_HEADER

RESOURCES = (health, auth, users, services, benefits, orders)
# The resources whose GETs a replica may serve (read_stale_ok), as README's table says.
REPLICA_READ_TAGS = frozenset({services.blp.name, benefits.blp.name, orders.blp.name})
WRITE_METHODS = frozenset({"post", "put", "patch", "delete"})
READ_AFTER_SCHEMA = {"type": "string", "pattern": LSN_PATTERN, "example": "0/5A1C3F8"}
READ_AFTER_PARAMETER = {
    "name": READ_AFTER_HEADER,
    "in": "header",
    "required": False,
    "schema": READ_AFTER_SCHEMA,
    "description": "With read replicas: serve this read only from one that has replayed this"
    " far (a write's X-Read-After-LSN; 0/0 for any), else from the primary.",
}
READ_AFTER_RESPONSE_HEADER = {
    "schema": READ_AFTER_SCHEMA,
    "description": "With read replicas, after a write: send it back with later reads to see it.",
}


class ReadAfterLsnDocs(BasePlugin):
    """Documents X-Read-After-LSN: answered by writes, honoured by the GETs replicas serve."""

    def operation_helper(self, path=None, operations=None, **kwargs) -> None:
        """Add the header to the path's replica reads and to its writes' success responses."""
        for method, operation in operations.items():
            if method == "get" and REPLICA_READ_TAGS.intersection(operation.get("tags", ())):
                operation.setdefault("parameters", []).append({**READ_AFTER_PARAMETER})
            elif method in WRITE_METHODS:
                for status, response in operation.get("responses", {}).items():
                    if str(status).startswith("2") and isinstance(response, dict):
                        headers = response.setdefault("headers", {})
                        headers[READ_AFTER_HEADER] = {**READ_AFTER_RESPONSE_HEADER}


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
    if app_settings(app).trusted_proxy_hops:
        app.after_request(read_the_rest_after_answering)
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
