"""Benefit bodies in and out."""

import marshmallow as ma

from app.models.benefit import WINDOW_REVERSED, window_reversed
from app.schemas.common import (
    MAX_ID,
    PageQuery,
    StrictSchema,
    Text,
    UtcDateTime,
    WholeMatch,
    body_integer,
    page_of,
    patch_of,
    reference,
)

CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,49}$"


def benefit_code_field(**kwargs) -> Text:
    """A benefit code: ASCII letters, digits, _ and -, which PostgreSQL and Python lower alike.

    Beyond ASCII they differ (`İ`: PostgreSQL "i", Python "i" and a combining dot), and a
    code compared lowered in the database would not be the one Python fingerprints.
    """
    return Text(
        validate=WholeMatch(CODE_PATTERN, error="Use 1 to 50 letters, digits, _ or -."), **kwargs
    )


class BenefitSchema(StrictSchema):
    """A benefit as clients see it, and as admins write it."""

    id = ma.fields.Integer(dump_only=True)
    code = benefit_code_field(required=True)
    title = Text(required=True, validate=ma.validate.Length(min=1, max=200))
    description = Text(load_default="", validate=ma.validate.Length(max=5000))
    discount_percent = body_integer(0, 100, required=True)
    service_id = reference(load_default=None, allow_none=True)
    active = ma.fields.Boolean(load_default=True)
    valid_from = UtcDateTime(load_default=None, allow_none=True)
    valid_until = UtcDateTime(load_default=None, allow_none=True)
    created_at = ma.fields.DateTime(dump_only=True)
    updated_at = ma.fields.DateTime(dump_only=True)

    @ma.validates_schema
    def window_is_ordered(self, data, **kwargs):
        """valid_from, when given with valid_until, comes first."""
        if window_reversed(data.get("valid_from"), data.get("valid_until")):
            raise ma.ValidationError(WINDOW_REVERSED, "valid_until")


class BenefitQuery(PageQuery):
    """Filters of the benefit list."""

    q = Text(validate=ma.validate.Length(max=200))
    active = ma.fields.Boolean()
    service_id = ma.fields.Integer(validate=ma.validate.Range(min=1, max=MAX_ID))


BenefitPage = page_of(BenefitSchema)
BenefitPatchSchema = patch_of(BenefitSchema)
