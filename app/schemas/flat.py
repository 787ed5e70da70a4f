"""A quicker dump for schemas of plain scalar fields: the same output, less machinery.

marshmallow spends over a microsecond per field per object on its serialise chain; a page
of 20 orders is 280 fields, more time than the page's query. A FlatSchema whose dump
fields are all plain scalars turns each value of the usual Python type into JSON's
directly, and hands anything else (a missing value, another type, a format, a hook)
to the field or schema as marshmallow would. tests/test_flat.py holds both to one output.
"""

import datetime as dt
from collections.abc import Callable
from typing import Any

import marshmallow as ma
from marshmallow.utils import missing


def same(value: Any) -> Any:
    """The value itself: an int, str or bool already is its JSON form."""
    return value


def iso_format(value: dt.datetime) -> str:
    """An ISO 8601 date-time, as marshmallow's DateTime writes by default."""
    return value.isoformat()


def direct_form(field: ma.fields.Field) -> tuple[type, Callable] | None:
    """The value type a field dumps directly and how, or None when marshmallow must."""
    if field.attribute is not None or field.data_key is not None:
        return None
    kind = type(field)
    if isinstance(field, ma.fields.Integer) and not field.as_string and plain_integer(kind):
        return int, same
    if isinstance(field, ma.fields.String) and kind._serialize is ma.fields.String._serialize:
        return str, same
    if isinstance(field, ma.fields.Boolean) and kind._serialize is ma.fields.Boolean._serialize:
        return bool, same
    if isinstance(field, ma.fields.DateTime) and iso_datetime(field):
        return dt.datetime, iso_format
    return None


def plain_integer(kind: type) -> bool:
    """Whether an Integer field class dumps as marshmallow's own Integer does."""
    integer = ma.fields.Integer
    return kind._serialize is integer._serialize and kind._format_num is integer._format_num


def iso_datetime(field: ma.fields.DateTime) -> bool:
    """Whether a DateTime field dumps with datetime.isoformat, as marshmallow's default does."""
    kind, datetime_field = type(field), ma.fields.DateTime
    return (
        kind._serialize is datetime_field._serialize
        and (field.format or kind.DEFAULT_FORMAT) == "iso"
        and kind.SERIALIZATION_FUNCS is datetime_field.SERIALIZATION_FUNCS
    )


class FlatSchema(ma.Schema):
    """A schema that dumps its plain scalar fields without marshmallow's per-field chain."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.direct_plan = self.plan_direct_dump()

    def plan_direct_dump(self) -> list[tuple] | None:
        """(name, type, convert, field) for each dump field, or None if any needs marshmallow."""
        if self._hooks["pre_dump"] or self._hooks["post_dump"]:
            return None
        plan = []
        for name, field in self.dump_fields.items():
            form = direct_form(field)
            if form is None:
                return None
            plan.append((name, *form, field))
        return plan

    def _serialize(self, obj: Any, *, many: bool = False):
        """marshmallow's _serialize, with each value of the expected type converted directly."""
        if self.direct_plan is None or obj is None:
            return super()._serialize(obj, many=many)
        if many:
            return [self._serialize(item) for item in obj]
        dumped = self.dict_class()
        for name, value_type, convert, field in self.direct_plan:
            value = self.get_attribute(obj, name, missing)
            if value is None:
                dumped[name] = None
            elif value.__class__ is value_type:
                dumped[name] = convert(value)
            else:
                value = field.serialize(name, obj, accessor=self.get_attribute)
                if value is not missing:
                    dumped[name] = value
        return dumped
