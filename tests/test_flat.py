"""FlatSchema dumps exactly what marshmallow's own dump does, and only takes the quick path
for fields whose output it knows."""

import datetime as dt
from types import SimpleNamespace

import marshmallow as ma
import pytest

from app.schemas.flat import FlatSchema
from app.schemas.order import OrderSchema
from app.schemas.service import ServiceSchema

MOMENT = dt.datetime(2026, 5, 4, 3, 2, 1, 123456, tzinfo=dt.UTC)
ORDER = {
    "id": 7,
    "user_id": 3,
    "service_id": 11,
    "benefit_code": None,
    "quantity": 2,
    "unit_price_cents": 1999,
    "discount_percent": 0,
    "discount_cents": 0,
    "total_cents": 3998,
    "status": "pending",
    "notes": "",
    "version": 1,
    "created_at": MOMENT,
    "updated_at": MOMENT.replace(tzinfo=None),
}
SERVICE = {
    "id": 1,
    "name": "Wash",
    "description": "déjà vu",
    "price_cents": 0,
    "active": False,
    "created_at": MOMENT,
    "updated_at": None,
}


class Moment(dt.datetime):
    """A datetime of a subclass, as some libraries return."""


def marshmallow_dump(schema: ma.Schema, obj, many: bool = False):
    """What marshmallow's own _serialize makes of obj."""
    return ma.Schema._serialize(schema, obj, many=many)


@pytest.mark.parametrize(
    ("schema", "row"),
    [(OrderSchema(), ORDER), (ServiceSchema(), SERVICE)],
)
def test_rows_and_objects_dump_as_marshmallow_dumps_them(schema, row):
    assert schema.direct_plan is not None
    for obj in (row, SimpleNamespace(**row)):
        assert schema.dump(obj) == marshmallow_dump(schema, obj)
    assert schema.dump([row, row], many=True) == marshmallow_dump(schema, [row, row], many=True)


def test_values_of_other_types_and_missing_ones_go_through_their_field():
    odd = {**SERVICE, "price_cents": 12.0, "active": 1, "name": 5}
    odd["created_at"] = Moment(2026, 1, 2, tzinfo=dt.UTC)
    schema = ServiceSchema()
    assert schema.dump(odd) == marshmallow_dump(schema, odd)
    partial = {key: value for key, value in SERVICE.items() if key != "description"}
    assert schema.dump(partial) == marshmallow_dump(schema, partial)
    assert "description" not in schema.dump(partial)


class Unusual(FlatSchema):
    """Fields whose output the quick path must not guess."""

    amount = ma.fields.Float()
    stamp = ma.fields.DateTime(format="rfc")


class Renamed(FlatSchema):
    """A field dumped under another key."""

    name = ma.fields.String(data_key="title")


class Hooked(FlatSchema):
    """A schema with a dump hook."""

    name = ma.fields.String()

    @ma.post_dump
    def shout(self, data, **kwargs):
        """Upper-case the name."""
        return {"name": data["name"].upper()}


@pytest.mark.parametrize("schema", [Unusual(), Renamed(), Hooked()])
def test_schemas_the_quick_path_cannot_vouch_for_use_marshmallow(schema):
    assert schema.direct_plan is None


def test_a_float_field_still_dumps_integers_as_floats():
    dumped = Unusual().dump({"amount": 3, "stamp": MOMENT})
    assert dumped == {"amount": 3.0, "stamp": "Mon, 04 May 2026 03:02:01 +0000"}
    assert isinstance(dumped["amount"], float)
