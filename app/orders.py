"""Order rules: server-side pricing, benefits, idempotent creation, versions and status."""

import hashlib
import json
import re
from typing import Any

import sqlalchemy as sa
from psycopg2 import errors as pg_errors
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, joinedload

from app.database import read_stale_ok, reading, transaction
from app.errors import ApiError
from app.models import Benefit, IdempotencyKey, Order, Service, User
from app.models.base import utcnow
from app.models.benefit import code_is
from app.models.order import CANCELLED, COMPLETED, CONFIRMED, PENDING

IDEMPOTENCY_CONSTRAINT = "uq_idempotency_keys_user_key"
VERSION_PATTERN = re.compile(r"[1-9][0-9]{0,9}")
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
    service = orderable_service(session, request["service_id"])
    benefit = usable_benefit(session, request.get("benefit_code"), service)
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


def orderable_service(session: Session, service_id: int) -> Service:
    """The active service with this id, or 422 on service_id."""
    service = session.get(Service, service_id)
    if service is None or not service.active:
        raise ApiError.validation({"service_id": ["No such service, or it is not available."]})
    return service


def usable_benefit(session: Session, code: str | None, service: Service) -> Benefit | None:
    """The benefit named by code if it applies to service now; None for no code; else 422."""
    if not code:
        return None
    benefit = session.scalar(sa.select(Benefit).where(code_is(code)))
    if benefit is None or not benefit.applies(service.id, utcnow()):
        raise ApiError.validation(
            {"benefit_code": ["No such benefit, or it does not apply to this service now."]}
        )
    return benefit


def place_order(user: User, request: dict[str, Any], key: str | None) -> tuple[Order, bool]:
    """Create an order; with an Idempotency-Key, return the first order for a retry.

    Returns the order and whether it is a replay. Concurrent requests with one key race
    on the unique (user_id, key) index: one commits, the others roll back and replay it.
    """
    if key is not None and (earlier := find_key(user, key)) is not None:
        return replay(earlier, request), True
    try:
        with transaction() as session:
            order = build_order(session, user, request)
            session.add(order)
            if key is not None:
                session.add(remembered_key(user, key, request, order))
    except sa_exc.IntegrityError as error:
        if key is None or not violates(error, IDEMPOTENCY_CONSTRAINT):
            raise
        return replay(find_key(user, key), request), True
    return order, False


def fingerprint_of(request: dict[str, Any]) -> str:
    """A digest of what a create request asks for, to tell a retry from a different request."""
    canonical = dict(request, benefit_code=(request.get("benefit_code") or "").lower() or None)
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


def remembered_key(user: User, key: str, request: dict[str, Any], order: Order) -> IdempotencyKey:
    """The row that ties user's key to the order it created and the request that did."""
    return IdempotencyKey(
        user_id=user.id, key=key, request_fingerprint=fingerprint_of(request), order=order
    )


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


def violates(error: sa_exc.IntegrityError, constraint: str) -> bool:
    """Whether error is a unique violation of the named constraint."""
    original = error.orig
    return (
        isinstance(original, pg_errors.UniqueViolation)
        and original.diag.constraint_name == constraint
    )


def expected_version(body_version: int | None, if_match: str | None) -> int | None:
    """The version the client read, from the body or an If-Match header (422 if they differ)."""
    header_version = parse_if_match(if_match) if if_match is not None else None
    if None not in (body_version, header_version) and body_version != header_version:
        raise ApiError.validation({"version": ["Differs from the If-Match header."]})
    return body_version if body_version is not None else header_version


def parse_if_match(value: str) -> int:
    """The version in an If-Match header: 3, "3" or W/"3" (ASCII digits, as ETags are sent)."""
    digits = value.strip().removeprefix("W/").strip('"')
    if VERSION_PATTERN.fullmatch(digits) is None:
        raise ApiError.validation({"If-Match": ['Must be the order\'s ETag, such as "3".']})
    return int(digits)


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
    with transaction():
        move(order, CANCELLED)
    return order
