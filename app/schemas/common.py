"""Schemas shared by every resource: pagination in, pages out."""

import marshmallow as ma

MAX_PER_PAGE = 100


class StrictSchema(ma.Schema):
    """Rejects unknown fields, so a typo or a forbidden field is a 422, not silence."""

    class Meta:
        unknown = ma.RAISE


class PageQuery(StrictSchema):
    """?page= and ?per_page= (at most 100)."""

    page = ma.fields.Integer(load_default=1, validate=ma.validate.Range(min=1))
    per_page = ma.fields.Integer(
        load_default=20, validate=ma.validate.Range(min=1, max=MAX_PER_PAGE)
    )


class PageSchema(ma.Schema):
    """A page of a list: its items, where it is, and how many there are in all."""

    page = ma.fields.Integer(required=True)
    per_page = ma.fields.Integer(required=True)
    total = ma.fields.Integer(required=True)


def page_of(item_schema: type[ma.Schema]) -> type[ma.Schema]:
    """A page schema whose items are item_schema."""
    name = item_schema.__name__.removesuffix("Schema") + "Page"
    return type(
        name, (PageSchema,), {"items": ma.fields.List(ma.fields.Nested(item_schema), required=True)}
    )
