"""Service bodies in and out."""

import marshmallow as ma

from app.schemas.common import PageQuery, page_of


class ServiceSchema(ma.Schema):
    """A service as clients see it."""

    id = ma.fields.Integer(dump_only=True)
    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=200))
    description = ma.fields.String(load_default="")
    price_cents = ma.fields.Integer(required=True, validate=ma.validate.Range(min=0))
    active = ma.fields.Boolean(load_default=True)
    created_at = ma.fields.DateTime(dump_only=True)
    updated_at = ma.fields.DateTime(dump_only=True)


class ServiceQuery(PageQuery):
    """Filters of the service list."""

    q = ma.fields.String(validate=ma.validate.Length(max=200))
    active = ma.fields.Boolean()


ServicePage = page_of(ServiceSchema)
