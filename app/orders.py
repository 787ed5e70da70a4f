"""Order rules: server-side pricing, benefits, idempotent creation, versions and status."""

import hashlib
import json
import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, joinedload
from sqlalchemy.orm.exc import StaleDataError

from app.database import read_stale_ok, reading, transaction
from app.errors import ApiError
from app.models import Benefit, IdempotencyKey, Order, Service, User
from app.models.base import insert_unless_taken, utcnow
from app.models.benefit import code_is
from app.models.order import CANCELLED, COMPLETED, CONFIRMED, PENDING

ENTITY_TAG = re.compile(r'(?P<weak>W/)?"(?P<version>[1-9][0-9]{0,9})"')
# Which status may follow which; admins move orders along, owners may only cancel (DELETE).
TRANSITIONS = {
    PENDING: {CONFIRMED, CANCELLED},
    CONFIRMED: {COMPLETED, CANCELLED},
    COMPLETED: set(),
    CANCELLED: set(),
}


def discount_cents(subtotal_cents: int, percent: int) -> int:
    """percent of subtotal_cents, rounded half up to the cent (integers only, no floats)."""
    return (subtotal_cents * percent + 50) // 100


def reprice(order: Order) -> None:
    """Set the order's discount and total from its quantity and its price snapshots."""
    subtotal = order.unit_price_cents * order.quantity
    order.discount_cents = discount_cents(subtotal, order.discount_percent)
    order.total_cents = subtotal - order.discount_cents


def visible_orders(user: User) -> sa.Select:
    """The orders user may see: all for an admin, their own for a customer."""
    statement = sa.select(Order).order_by(Order.id)
    return statement if user.is_admin else statement.where(Order.user_id == user.id)


def get_visible_order(user: User, order_id: int) -> Order:
    """The order, or 404 when it does not exist or is not user's to see."""
    with reading() as session:
        order = session.scalar(visible_orders(user).where(Order.id == order_id))
    if order is None:
        raise ApiError.not_found("order")
    return order


def show_visible_order(user: User, order_id: int) -> Order:
    """The order for a GET, from a replica that has the client's writes (read_stale_ok), or 404."""
    statement = visible_orders(user).where(Order.id == order_id)
    order = read_stale_ok(lambda session: session.scalar(statement), own_writes=True)
    if order is None:
        raise ApiError.not_found("order")
    return order


def build_order(session: Session, user: User, request: dict[str, Any]) -> Order:
    """A new pending order, priced from the service and the benefit it names."""
    service, benefit = service_and_benefit(
        session, request["service_id"], request.get("benefit_code")
    )
    order = Order(
        user_id=user.id,
        service_id=service.id,
        benefit_id=benefit.id if benefit else None,
        benefit_code=benefit.code if benefit else None,
        quantity=request["quantity"],
        unit_price_cents=service.price_cents,
        discount_percent=benefit.discount_percent if benefit else 0,
        notes=request.get("notes") or "",
    )
    reprice(order)
    return order


def service_and_benefit(
    session: Session, service_id: int, code: str | None
) -> tuple[Service, Benefit | None]:
    """The active service and the benefit code names, if it applies to it now; else 422.

    One query for both: the benefit comes along by an outer join on its code.
    """
    statement = sa.select(Service).where(Service.id == service_id)
    if code:
        statement = statement.add_columns(Benefit).outerjoin(Benefit, code_is(code))
    row = session.execute(statement).first()
    service = row[0] if row else None
    if service is None or not service.active:
        raise ApiError.validation({"service_id": ["No such service, or it is not available."]})
    benefit = row[1] if code else None
    if code and (benefit is None or not benefit.applies(service.id, utcnow())):
        raise ApiError.validation(
            {"benefit_code": ["No such benefit, or it does not apply to this service now."]}
        )
    return service, benefit


class KeyTaken(Exception):
    """A concurrent request with the same Idempotency-Key created its order first."""


def place_order(user: User, request: dict[str, Any], key: str | None) -> tuple[Order, bool]:
    """Create an order; with an Idempotency-Key, return the first order for a retry.

    Returns the order and whether it is a replay. Concurrent requests with one key meet
    at the key's insert: the first commits, the others wait for it, roll back and replay.
    """
    if key is not None and (earlier := find_key(user, key)) is not None:
        return replay(earlier, request), True
    try:
        with transaction() as session:
            order = build_order(session, user, request)
            session.add(order)
            if key is not None and not remember_key(session, user, key, request, order):
                raise KeyTaken
    except KeyTaken:
        return replay(find_key(user, key), request), True
    return order, False


def fingerprint_of(request: dict[str, Any]) -> str:
    """A digest of what a create request asks for, to tell a retry from a different request."""
    canonical = dict(request, benefit_code=(request.get("benefit_code") or "").lower() or None)
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


def remember_key(
    session: Session, user: User, key: str, request: dict[str, Any], order: Order
) -> bool:
    """Tie user's key to the order and the request that made it; False if the key is taken."""
    session.flush()  # The order's id.
    values = {
        "user_id": user.id,
        "key": key,
        "request_fingerprint": fingerprint_of(request),
        "order_id": order.id,
    }
    return insert_unless_taken(session, IdempotencyKey, ["user_id", "key"], values) is not None


def find_key(user: User, key: str) -> IdempotencyKey | None:
    """user's earlier use of this Idempotency-Key, if any."""
    with reading() as session:
        return session.scalar(
            sa.select(IdempotencyKey)
            .where(IdempotencyKey.user_id == user.id, IdempotencyKey.key == key)
            .options(joinedload(IdempotencyKey.order))
        )


def replay(earlier: IdempotencyKey, request: dict[str, Any]) -> Order:
    """The order an earlier request with this key created; 422 if this request differs."""
    if earlier.request_fingerprint != fingerprint_of(request):
        raise ApiError(
            422,
            "idempotency_key_reused",
            "this Idempotency-Key was used for a different request; use a new key",
        )
    return earlier.order


def expected_version(body_version: int | None, if_match: str | None) -> int | None:
    """The version the client read, from the body or an If-Match header (422 if they differ)."""
    header_version = parse_if_match(if_match) if if_match is not None else None
    if None not in (body_version, header_version) and body_version != header_version:
        raise ApiError.validation({"version": ["Differs from the If-Match header."]})
    return body_version if body_version is not None else header_version


def parse_if_match(value: str) -> int:
    """The version in an If-Match header: "3", the ETag as answered (ASCII digits).

    RFC 9110 compares If-Match strongly, so a weak W/"3" matches no version: 409, as a
    stale one. What is not an entity tag at all ("3, 3", 3 unquoted) is a 422.
    """
    tag = ENTITY_TAG.fullmatch(value.strip())
    if tag is None:
        raise ApiError.validation({"If-Match": ['Must be the order\'s ETag, such as "3".']})
    if tag["weak"]:
        raise ApiError.conflict("a weak ETag never matches If-Match; send the ETag as answered")
    return int(tag["version"])


def check_version(order: Order, version: int | None, required: bool) -> None:
    """409 when the client read an older version; 422 when a required version is missing."""
    if version is None:
        if required:
            raise ApiError.validation(
                {"version": ["Send the version you read, in the body or an If-Match header."]}
            )
        return
    if version != order.version:
        raise ApiError.conflict(
            f"the order changed since version {version}; it is at version {order.version}"
        )


def update_order(user: User, order: Order, changes: dict[str, Any]) -> Order:
    """Apply an owner's or admin's changes: quantity and notes while pending, status by admins."""
    status = changes.pop("status", None)
    if status is not None and not user.is_admin:
        raise ApiError.validation({"status": ["Only an admin may change the status."]})
    changes = {name: value for name, value in changes.items() if getattr(order, name) != value}
    with transaction():
        if changes:
            edit_pending(order, changes)
        if status is not None and status != order.status:
            move(order, status)
    return order


def edit_pending(order: Order, changes: dict[str, Any]) -> None:
    """Change quantity and notes of a pending order, repricing from its snapshots."""
    if order.status != PENDING:
        raise ApiError.conflict(f"only a pending order can be changed; this one is {order.status}")
    for name, value in changes.items():
        setattr(order, name, value)
    reprice(order)


def move(order: Order, status: str) -> None:
    """Change status along TRANSITIONS, or 409."""
    if status not in TRANSITIONS[order.status]:
        raise ApiError.conflict(f"an order cannot go from {order.status} to {status}")
    order.status = status


def cancel_order(user: User, order: Order) -> Order:
    """Cancel: owners while pending, admins while pending or confirmed; again is a no-op."""
    if order.status == CANCELLED:
        return order
    if not user.is_admin and order.status == CONFIRMED:
        raise ApiError.conflict("a confirmed order can only be cancelled by an admin")
    try:
        with transaction():
            move(order, CANCELLED)
    except StaleDataError:
        return cancelled_meanwhile(user, order.id)
    return order


def cancelled_meanwhile(user: User, order_id: int) -> Order:
    """The order a concurrent request changed first: fine if it cancelled it, else 409."""
    order = get_visible_order(user, order_id)
    if order.status != CANCELLED:
        raise ApiError.conflict(f"the order changed meanwhile; it is {order.status}")
    return order
