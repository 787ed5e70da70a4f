"""One blueprint per resource, registered on the OpenAPI-aware Api."""

from flask_smorest import Api

from app.api import health, services


def register_blueprints(api: Api) -> None:
    """Register every resource's blueprint."""
    for module in (health, services):
        api.register_blueprint(module.blp)
