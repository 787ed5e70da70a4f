"""Services: anyone reads them; admins write them."""

import sqlalchemy as sa
from flask.views import MethodView

from app.api.blueprint import Blueprint
from app.api.catalogue import (
    delete_unreferenced,
    filter_by,
    get_or_404,
    save_changes,
    save_new,
    search,
    show_or_404,
)
from app.api.pagination import paginate
from app.models import Service
from app.schemas.service import (
    ServicePage,
    ServicePatchSchema,
    ServiceQuery,
    ServiceSchema,
)

blp = Blueprint("services", __name__, url_prefix="/api/services", description="Services to order")


@blp.route("")
class Services(MethodView):
    """The service list."""

    @blp.arguments(ServiceQuery, location="query")
    @blp.response(200, ServicePage)
    def get(self, query):
        """List services, filtered by name (?q=) and ?active=."""
        statement = search(sa.select(Service).order_by(Service.id), query, Service.name)
        return paginate(
            filter_by(statement, query, {"active": Service.active}), query, stale_ok=True
        )

    @blp.admin_only
    @blp.arguments(ServiceSchema)
    @blp.response(201, ServiceSchema)
    def post(self, fields):
        """Create a service (admin)."""
        return save_new(Service(**fields))


@blp.route("/<id:service_id>")
class ServiceById(MethodView):
    """One service."""

    @blp.response(200, ServiceSchema)
    def get(self, service_id):
        """Get a service."""
        return show_or_404(Service, service_id, "service")

    @blp.admin_only
    @blp.arguments(ServiceSchema)
    @blp.response(200, ServiceSchema)
    def put(self, fields, service_id):
        """Replace a service (admin)."""
        return save_changes(get_or_404(Service, service_id, "service"), fields)

    @blp.admin_only
    @blp.arguments(ServicePatchSchema)
    @blp.response(200, ServiceSchema)
    def patch(self, fields, service_id):
        """Change some of a service's fields (admin)."""
        return save_changes(get_or_404(Service, service_id, "service"), fields)

    @blp.admin_only
    @blp.response(204)
    def delete(self, service_id):
        """Delete a service no order or benefit refers to (admin); otherwise 409."""
        delete_unreferenced(get_or_404(Service, service_id, "service"), "service")
