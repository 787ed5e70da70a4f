"""Order bodies, headers and filters."""

import marshmallow as ma

from app.models.order import STATUSES
from app.schemas.benefit import benefit_code_field
from app.schemas.common import (
    MAX_ID,
    PageQuery,
    StrictSchema,
    Text,
    body_integer,
    page_of,
    reference,
)

MAX_QUANTITY = 1000


class OrderSchema(ma.Schema):
    """An order as clients see it."""

    id = ma.fields.Integer(required=True)
    user_id = ma.fields.Integer(required=True)
    service_id = ma.fields.Integer(required=True)
    benefit_code = ma.fields.String(required=True, allow_none=True)
    quantity = ma.fields.Integer(required=True)
    unit_price_cents = ma.fields.Integer(required=True)
    discount_percent = ma.fields.Integer(required=True)
    discount_cents = ma.fields.Integer(required=True)
    total_cents = ma.fields.Integer(required=True)
    status = ma.fields.String(required=True, validate=ma.validate.OneOf(STATUSES))
    notes = ma.fields.String(required=True)
    version = ma.fields.Integer(required=True)
    created_at = ma.fields.DateTime(required=True)
    updated_at = ma.fields.DateTime(required=True)


def notes_field(**kwargs) -> Text:
    """Free text for the people who fulfil the order."""
    return Text(validate=ma.validate.Length(max=2000), **kwargs)


def quantity_field(**kwargs) -> ma.fields.Integer:
    """How many units: a whole number from 1 to 1000."""
    return body_integer(1, MAX_QUANTITY, **kwargs)


class OrderCreateSchema(StrictSchema):
    """A new order: what and how many; the server sets every price."""

    service_id = reference(required=True)
    quantity = quantity_field(required=True)
    benefit_code = benefit_code_field(load_default=None, allow_none=True)
    notes = notes_field(load_default="")


class OrderReplaceSchema(StrictSchema):
    """PUT: the writable fields whole; status is for admins; version guards stale writes."""

    quantity = quantity_field(required=True)
    notes = notes_field(load_default="")
    status = ma.fields.String(validate=ma.validate.OneOf(STATUSES))
    version = body_integer(1, MAX_ID)


class OrderPatchSchema(OrderReplaceSchema):
    """PATCH: any of PUT's fields."""

    quantity = quantity_field()
    notes = notes_field()


class OrderQuery(PageQuery):
    """Filters of the order list."""

    status = ma.fields.String(validate=ma.validate.OneOf(STATUSES))
    service_id = ma.fields.Integer(validate=ma.validate.Range(min=1, max=MAX_ID))


class IdempotencyHeaders(ma.Schema):
    """The optional Idempotency-Key that makes a retried POST safe."""

    class Meta:
        unknown = ma.EXCLUDE  # Every other request header.

    idempotency_key = Text(data_key="Idempotency-Key", validate=ma.validate.Length(min=1, max=255))


class IfMatchHeaders(ma.Schema):
    """The optional If-Match header: the order version the client read, as its ETag."""

    class Meta:
        unknown = ma.EXCLUDE  # Every other request header.

    if_match = ma.fields.String(data_key="If-Match", validate=ma.validate.Length(max=40))


OrderPage = page_of(OrderSchema)
