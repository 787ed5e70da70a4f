"""Schemas shared by every resource: safe scalar fields, pagination in, pages out, errors."""

from collections.abc import Mapping
from datetime import UTC, datetime
from itertools import islice

import marshmallow as ma

MAX_PER_PAGE = 100
MAX_PAGE = 1_000_000
MAX_ID = 2**31 - 1  # PostgreSQL integer: a larger id can name no row.
EARLIEST_YEAR, LATEST_YEAR = 1900, 9000
# A 422 names at most this many unknown fields (errors.py lists no more than 20 in all).
MAX_UNKNOWN_LISTED = 20


class StrictSchema(ma.Schema):
    """Rejects unknown fields, so a typo or a forbidden field is a 422, not silence.

    Unknown keys are set aside before loading and the first few reported once: marshmallow
    would record an error for each of them, which for 50,000 keys took a worker 0.6 s.
    """

    class Meta:
        unknown = ma.RAISE  # What the OpenAPI document says (additionalProperties: false).

    def known_keys(self) -> set[str]:
        """The keys this schema loads: each field's data_key, or its name."""
        return {field.data_key or name for name, field in self.load_fields.items()}

    @ma.pre_load
    def set_aside_unknown(self, data, **kwargs):
        """data without its unknown keys; unknown_are_refused reports them."""
        if not isinstance(data, Mapping):
            return data
        known = self.known_keys()
        if all(key in known for key in data):
            return data
        return {key: data[key] for key in known if key in data}

    @ma.validates_schema(pass_original=True, skip_on_field_errors=False)
    def unknown_are_refused(self, data, original_data, **kwargs):
        """The first MAX_UNKNOWN_LISTED unknown keys, each "Unknown field."."""
        if not isinstance(original_data, Mapping):
            return
        known = self.known_keys()
        unknown = islice((key for key in original_data if key not in known), MAX_UNKNOWN_LISTED)
        errors = {key: [self.error_messages["unknown"]] for key in unknown}
        if errors:
            raise ma.ValidationError(errors)


class Text(ma.fields.String):
    """A string PostgreSQL can store: no NUL character, no lone surrogate."""

    def _deserialize(self, value, attr, data, **kwargs):
        """Load the string, then refuse what the database would choke on."""
        text = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in text:
            raise ma.ValidationError("Must not contain NUL characters.")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ma.ValidationError("Must be valid Unicode text.") from None
        return text


class WholeMatch(ma.validate.Regexp):
    """Regexp over the whole string: with match() alone, `$` lets a final newline through."""

    def __call__(self, value: str) -> str:
        """value, if the whole of it matches; else a ValidationError."""
        if self.regex.fullmatch(value) is None:
            raise ma.ValidationError(self.error.format(input=value, regex=self.regex.pattern))
        return value


class UtcDateTime(ma.fields.AwareDateTime):
    """An ISO 8601 date-time, UTC when it names no offset, stored in UTC."""

    def __init__(self, **kwargs):
        super().__init__(default_timezone=UTC, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        """Load the date-time; refuse years the database round-trip cannot represent."""
        moment = in_years(super()._deserialize(value, attr, data, **kwargs))
        return in_years(moment.astimezone(UTC))  # 9000-12-31T23:00-05:00 is in 9001.


def in_years(moment: datetime) -> datetime:
    """moment, if its year is from EARLIEST_YEAR to LATEST_YEAR; else a ValidationError."""
    if not EARLIEST_YEAR <= moment.year <= LATEST_YEAR:
        raise ma.ValidationError(f"Year must be from {EARLIEST_YEAR} to {LATEST_YEAR}.")
    return moment


def body_integer(low: int, high: int, **kwargs) -> ma.fields.Integer:
    """A JSON integer in [low, high]; strings and fractions are refused."""
    return ma.fields.Integer(strict=True, validate=ma.validate.Range(min=low, max=high), **kwargs)


def reference(**kwargs) -> ma.fields.Integer:
    """An id in a body: a positive JSON integer that fits the database's id column."""
    return body_integer(1, MAX_ID, **kwargs)


class PageQuery(StrictSchema):
    """?page= and ?per_page= (at most 100)."""

    page = ma.fields.Integer(load_default=1, validate=ma.validate.Range(min=1, max=MAX_PAGE))
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


class ErrorDetail(ma.Schema):
    """What went wrong: a stable code, a sentence, and the input fields at fault."""

    code = ma.fields.String(required=True)
    message = ma.fields.String(required=True)
    fields = ma.fields.Dict(keys=ma.fields.String())
    request_id = ma.fields.String(metadata={"description": "the request's X-Request-ID"})


class ErrorSchema(ma.Schema):
    """The body of every error response (documentation only; errors.py renders it)."""

    error = ma.fields.Nested(ErrorDetail, required=True)


def patch_of(schema: type[ma.Schema]) -> type[ma.Schema]:
    """A variant of schema that loads any subset of its fields, for PATCH (e.g. ServicePatch)."""

    def __init__(self, **kwargs):
        schema.__init__(self, partial=True, **kwargs)

    name = schema.__name__.removesuffix("Schema") + "PatchSchema"
    return type(name, (schema,), {"__init__": __init__, "__doc__": f"PATCH: {schema.__doc__}"})
