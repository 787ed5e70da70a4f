"""Services: anyone reads them."""

import sqlalchemy as sa
from flask.views import MethodView

from app.api.blueprint import Blueprint
from app.api.pagination import paginate
from app.errors import ApiError
from app.extensions import db
from app.models import Service
from app.schemas.service import ServicePage, ServiceQuery, ServiceSchema

blp = Blueprint("services", __name__, url_prefix="/api/services", description="Services to order")


@blp.route("")
class Services(MethodView):
    """The service list."""

    @blp.arguments(ServiceQuery, location="query")
    @blp.response(200, ServicePage)
    def get(self, query):
        """List services, filtered by name (?q=) and ?active=."""
        statement = sa.select(Service).order_by(Service.id)
        if "q" in query:
            statement = statement.where(Service.name.icontains(query["q"], autoescape=True))
        if "active" in query:
            statement = statement.where(Service.active == query["active"])
        return paginate(statement, query)


@blp.route("/<int:service_id>")
class ServiceById(MethodView):
    """One service."""

    @blp.response(200, ServiceSchema)
    def get(self, service_id):
        """Get a service."""
        return db.session.get(Service, service_id) or abort_not_found()


def abort_not_found():
    """Raise the 404 of a missing service."""
    raise ApiError.not_found("service")
