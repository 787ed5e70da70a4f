"""Orders: each user's own; admins see and move all of them."""

from flask.views import MethodView

from app.api.access import current_user
from app.api.blueprint import Blueprint
from app.api.pagination import paginate
from app.models import Order
from app.orders import (
    cancel_order,
    check_version,
    expected_version,
    get_visible_order,
    place_order,
    show_visible_order,
    update_order,
    visible_orders,
)
from app.schemas.order import (
    IdempotencyHeaders,
    IfMatchHeaders,
    OrderCreateSchema,
    OrderPage,
    OrderPatchSchema,
    OrderQuery,
    OrderReplaceSchema,
    OrderSchema,
)

blp = Blueprint("orders", __name__, url_prefix="/api/orders", description="Orders")


def with_etag(order: Order, status: int = 200, **headers: str):
    """The order with its version as ETag, for a later If-Match."""
    return order, status, {"ETag": f'"{order.version}"', **headers}


@blp.route("")
class Orders(MethodView):
    """The caller's orders (an admin's: everyone's)."""

    @blp.signed_in
    @blp.arguments(OrderQuery, location="query")
    @blp.response(200, OrderPage)
    def get(self, query):
        """List orders, filtered by ?status= and ?service_id=."""
        statement = visible_orders(current_user())
        for name in ("status", "service_id"):
            if name in query:
                statement = statement.where(getattr(Order, name) == query[name])
        return paginate(statement, query, stale_ok=True, own_writes=True)

    @blp.signed_in
    @blp.arguments(IdempotencyHeaders, location="headers")
    @blp.arguments(OrderCreateSchema)
    @blp.response(201, OrderSchema)
    def post(self, headers, request):
        """Place an order, priced by the server; a repeated Idempotency-Key returns the first."""
        order, replayed = place_order(current_user(), request, headers.get("idempotency_key"))
        extra = {"Location": f"/api/orders/{order.id}"}
        if replayed:
            extra["Idempotent-Replayed"] = "true"
        return with_etag(order, 201, **extra)


@blp.route("/<id:order_id>")
class OrderById(MethodView):
    """One order of the caller's (any order, for an admin)."""

    @blp.signed_in
    @blp.response(200, OrderSchema)
    def get(self, order_id):
        """Get an order, with its version as ETag."""
        return with_etag(show_visible_order(current_user(), order_id))

    @blp.signed_in
    @blp.arguments(IfMatchHeaders, location="headers")
    @blp.arguments(OrderReplaceSchema)
    @blp.response(200, OrderSchema)
    @blp.alt_response(409, "CONFLICT")
    def put(self, headers, changes, order_id):
        """Replace quantity and notes (and, for admins, status) of the version you read."""
        return with_etag(change(order_id, headers, changes))

    @blp.signed_in
    @blp.arguments(IfMatchHeaders, location="headers")
    @blp.arguments(OrderPatchSchema)
    @blp.response(200, OrderSchema)
    @blp.alt_response(409, "CONFLICT")
    def patch(self, headers, changes, order_id):
        """Change some of quantity, notes (and, for admins, status) of the version you read."""
        return with_etag(change(order_id, headers, changes))

    @blp.signed_in
    @blp.arguments(IfMatchHeaders, location="headers")
    @blp.response(200, OrderSchema)
    @blp.alt_response(409, "CONFLICT")
    def delete(self, headers, order_id):
        """Cancel an order (the row stays); If-Match, when sent, must be current."""
        user = current_user()
        order = get_visible_order(user, order_id)
        check_version(order, expected_version(None, headers.get("if_match")), required=False)
        return with_etag(cancel_order(user, order))


def change(order_id: int, headers: dict, changes: dict) -> Order:
    """Check the caller may see the order and read its current version, then update it."""
    user = current_user()
    order = get_visible_order(user, order_id)
    version = expected_version(changes.pop("version", None), headers.get("if_match"))
    check_version(order, version, required=True)
    return update_order(user, order, changes)
