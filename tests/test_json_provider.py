"""orjson writes what Flask's own provider writes, for every kind of value the API sends."""

import dataclasses
import datetime
import decimal
import json
import uuid

import flask
import pytest
from flask.json.provider import DefaultJSONProvider

from app import create_app
from app.json_provider import OrjsonProvider


@dataclasses.dataclass
class Point:
    x: int
    y: int


VALUES = [
    {"b": 1, "a": [True, None, 1.5, "text"], "nested": {"z": 0, "y": {}}},
    {"created_at": datetime.datetime(2026, 11, 26, 17, 0, tzinfo=datetime.UTC)},
    {"day": datetime.date(2026, 11, 26), "naive": datetime.datetime(2026, 1, 2, 3, 4, 5)},
    {"price": decimal.Decimal("12.30"), "id": uuid.UUID(int=7), "point": Point(1, 2)},
    {"name": "Zoë — ünïcode ✓", "escapes": 'quote " backslash \\ tab \t'},
    {2: "int keys", 10: "sort as Flask sorts them"},
    {"huge": 2**80, "negative": -(2**70)},
    [],
    "plain",
]


@pytest.fixture
def providers():
    app = flask.Flask(__name__)
    return OrjsonProvider(app), DefaultJSONProvider(app)


@pytest.mark.parametrize("value", VALUES)
def test_dumps_writes_the_json_flask_writes(providers, value):
    ours, flasks = providers
    assert json.loads(ours.dumps(value)) == json.loads(flasks.dumps(value))


def test_keys_are_sorted_and_the_output_compact(providers):
    ours, _ = providers
    assert ours.dumps({"b": 1, "a": {"d": 2, "c": 3}}) == '{"a":{"c":3,"d":2},"b":1}'


def test_what_json_cannot_write_raises_as_in_flask(providers):
    ours, flasks = providers
    for provider in (ours, flasks):
        with pytest.raises(TypeError):
            provider.dumps({"value": object()})


def test_responses_are_compact_and_indented_in_debug():
    app = create_app({"DATABASE_URL": "sqlite://", "SECRET_KEY": "x"})
    assert isinstance(app.json, OrjsonProvider)
    with app.app_context():
        response = app.json.response({"b": 1, "a": "é"})
        assert response.mimetype == "application/json"
        assert response.get_data() == '{"a":"é","b":1}\n'.encode()
        app.debug = True
        assert app.json.response({"a": 1}).get_data(as_text=True) == '{\n  "a": 1\n}\n'
