"""A row's JSON as its schema dumps it, written without marshmallow's per-field work.

On a one-row GET the marshmallow dump cost more instructions than the query itself (README,
"Performance"): every field goes through Field.serialize and its accessor, and every
date-time through datetime.isoformat. A schema whose fields are plain scalars (integers,
strings, booleans, ISO date-times, without another key or attribute) dumps a database row
to the values the row holds, so orjson can write the row itself: the same bytes, date-times
in ISO 8601 as isoformat writes them (read back in UTC: app/models/base.py). RowJson
refuses any other field when it is made, at import, and checks that the schema's own dump
of a sample row gives its bytes (a dump hook would not), so a schema that changes fails at
startup rather than answering different JSON; tests/test_rows.py compares its bytes with
marshmallow's for real rows. Unlike jsonify, it writes compact JSON in debug mode too.
"""

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import marshmallow as ma
import orjson
from flask import current_app

from app.schemas.common import Text, UtcDateTime

# Fields whose dump of a database value is that value (date-times: its isoformat()).
PLAIN_FIELDS = frozenset(
    {
        ma.fields.Integer,
        ma.fields.String,
        Text,
        ma.fields.Boolean,
        ma.fields.DateTime,
        ma.fields.AwareDateTime,
        UtcDateTime,
    }
)
ISO_FORMATS = (None, "iso", "iso8601")
# What a sample row holds for each kind of plain field.
SAMPLE_VALUES = (
    (ma.fields.Integer, 2**31 - 1),
    (ma.fields.String, 'Ofen & "Herd" \u00e9 😀'),
    (ma.fields.Boolean, True),
    (ma.fields.DateTime, datetime(2001, 2, 3, 4, 5, 6, 789, tzinfo=UTC)),
)


class RowJson:
    """Writes rows (mappings of column name to value) as schema would dump and jsonify them."""

    def __init__(self, schema: ma.Schema):
        self.schema = schema
        self.names = plain_field_names(schema)
        sample = sample_row(schema)
        if self.dumps(sample) != orjson.dumps(schema.dump(sample), option=orjson.OPT_SORT_KEYS):
            raise TypeError(
                f"{type(schema).__name__} dumps a row differently: dump it with marshmallow"
            )

    def dumps(self, row: Mapping[str, Any]) -> bytes:
        """The row's JSON: its schema's fields, keys sorted, compact, as Flask's jsonify writes."""
        fields = {name: row[name] for name in self.names}
        try:
            return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:  # An integer past 64 bits: the app's JSON, as before.
            return current_app.json.dumps(self.schema.dump(row)).encode()


def plain_field_names(schema: ma.Schema) -> tuple[str, ...]:
    """The names of schema's dumped fields; a TypeError when one is not plain."""
    for name, field in schema.dump_fields.items():
        if not is_plain(field):
            raise TypeError(
                f"{type(schema).__name__}.{name} is not a plain field: dump it with marshmallow"
            )
    return tuple(schema.dump_fields)


def sample_row(schema: ma.Schema) -> dict[str, Any]:
    """A row with a value of the right kind for each of schema's dumped fields."""
    return {
        name: next(value for kind, value in SAMPLE_VALUES if isinstance(field, kind))
        for name, field in schema.dump_fields.items()
    }


def is_plain(field: ma.fields.Field) -> bool:
    """Whether field dumps a database value as the value itself, under its own name."""
    if type(field) not in PLAIN_FIELDS or field.data_key is not None or field.attribute:
        return False
    if isinstance(field, ma.fields.Integer) and field.as_string:
        return False
    return not (isinstance(field, ma.fields.DateTime) and field.format not in ISO_FORMATS)
