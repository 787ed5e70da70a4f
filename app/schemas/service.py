"""Service bodies in and out."""

import marshmallow as ma

from app.schemas.common import PageQuery, StrictSchema, Text, body_integer, page_of, patch_of

MAX_PRICE_CENTS = 10**10


class ServiceSchema(StrictSchema):
    """A service as clients see it, and as admins write it."""

    id = ma.fields.Integer(dump_only=True)
    name = Text(required=True, validate=ma.validate.Length(min=1, max=200))
    description = Text(load_default="", validate=ma.validate.Length(max=5000))
    price_cents = body_integer(0, MAX_PRICE_CENTS, required=True)
    active = ma.fields.Boolean(load_default=True)
    created_at = ma.fields.DateTime(dump_only=True)
    updated_at = ma.fields.DateTime(dump_only=True)


class ServiceQuery(PageQuery):
    """Filters of the service list."""

    q = Text(validate=ma.validate.Length(max=200))
    active = ma.fields.Boolean()


ServicePage = page_of(ServiceSchema)
ServicePatchSchema = patch_of(ServiceSchema)
