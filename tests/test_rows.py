"""One-row GETs are written by RowJson: the same bytes as marshmallow's dump through jsonify."""

from datetime import UTC, datetime, timedelta

import marshmallow as ma
import pytest

from app import create_app
from app.api.catalogue import read_or_404
from app.database import dispose_engines
from app.models import Benefit, Service
from app.schemas.benefit import BenefitSchema
from app.schemas.common import StrictSchema
from app.schemas.rows import RowJson
from app.schemas.service import ServiceSchema
from tests import pg
from tests.conftest import TEST_SETTINGS, add_row

ON_THE_SECOND = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
WITH_MICROSECONDS = datetime(1999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
AWKWARD_TEXT = 'Ofen\u00a0& "Herd" \\ </script>\n\t😀 ︎ \u2028'


def marshmallow_json(app, schema: ma.Schema, row) -> bytes:
    """What flask-smorest's response() answered for row: schema.dump, then jsonify."""
    with app.test_request_context():
        return app.json.response(schema.dump(row)).get_data()


def written(app, schema: ma.Schema, row) -> bytes:
    """What RowJson answers for row, with the newline Flask's provider adds."""
    with app.test_request_context():
        return RowJson(schema).dumps(row) + b"\n"


def read_row(app, model, row_id):
    """The row as the GET view reads it."""
    with app.app_context():
        return read_or_404(model, row_id, "row")


@pytest.mark.parametrize("moment", [ON_THE_SECOND, WITH_MICROSECONDS])
def test_a_service_row_is_written_as_marshmallow_dumps_it(app, moment):
    service_id = add_row(
        app,
        Service(
            name=AWKWARD_TEXT,
            description="",
            price_cents=10**10,
            active=False,
            created_at=moment,
            updated_at=moment + timedelta(microseconds=1),
        ),
    )
    row = read_row(app, Service, service_id)
    assert written(app, ServiceSchema(), row) == marshmallow_json(app, ServiceSchema(), row)


@pytest.mark.parametrize("window", [(None, None), (WITH_MICROSECONDS, ON_THE_SECOND)])
def test_a_benefit_row_is_written_as_marshmallow_dumps_it(app, service_id, window):
    valid_from, valid_until = window
    benefit_id = add_row(
        app,
        Benefit(
            code="WINTER-1",
            title=AWKWARD_TEXT,
            discount_percent=100,
            service_id=service_id if valid_from else None,
            valid_from=valid_from,
            valid_until=valid_until,
        ),
    )
    row = read_row(app, Benefit, benefit_id)
    assert written(app, BenefitSchema(), row) == marshmallow_json(app, BenefitSchema(), row)


def test_timestamps_are_answered_in_utc_whatever_the_servers_time_zone():
    # Amsterdam's offset in 1900 was local mean time, +00:19:32, seconds and all.
    with pg.migrated_database() as url:
        pg.admin_execute(
            f"ALTER DATABASE {pg.database_name(url)} SET timezone = 'Europe/Amsterdam'"
        )
        app = create_app({**TEST_SETTINGS, "DATABASE_URL": url})
        try:
            moment = datetime(1900, 6, 1, tzinfo=UTC)
            benefit_id = add_row(
                app, Benefit(code="OLD", title="Old", discount_percent=1, valid_from=moment)
            )
            response = app.test_client().get(f"/api/benefits/{benefit_id}")
            row = read_row(app, Benefit, benefit_id)
            assert response.json["valid_from"] == "1900-06-01T00:00:00+00:00"
            assert response.get_data() == marshmallow_json(app, BenefitSchema(), row)
        finally:
            dispose_engines(app, close=True)


def test_the_get_answers_the_written_row(client, app, service_id):
    response = client.get(f"/api/services/{service_id}")
    row = read_row(app, Service, service_id)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_data() == marshmallow_json(app, ServiceSchema(), row)


def test_an_integer_past_64_bits_is_written_as_before(app):
    class Big(StrictSchema):
        count = ma.fields.Integer()

    row = {"count": 2**70}
    expected = b'{"count":%d}\n' % 2**70
    assert written(app, Big(), row) == marshmallow_json(app, Big(), row) == expected


@pytest.mark.parametrize(
    "field",
    [
        ma.fields.Nested(ServiceSchema),
        ma.fields.Float(),
        ma.fields.Decimal(),
        ma.fields.UUID(),
        ma.fields.Integer(as_string=True),
        ma.fields.DateTime(format="rfc"),
        ma.fields.String(data_key="title"),
        ma.fields.String(attribute="title"),
        ma.fields.Function(lambda row: row["title"]),
    ],
    ids=repr,
)
def test_a_schema_with_a_field_that_is_not_plain_is_refused_at_once(field):
    schema = StrictSchema.from_dict({"name": field})()
    with pytest.raises(TypeError, match="name is not a plain field"):
        RowJson(schema)


class Hooked(StrictSchema):
    name = ma.fields.String()

    @ma.post_dump
    def shout(self, data, **_kwargs):
        return {**data, "name": data["name"].upper()}


class ReadsAnotherWay(StrictSchema):
    name = ma.fields.String()

    def get_attribute(self, obj, attr, default):
        return "always this"


@pytest.mark.parametrize("schema", [Hooked, ReadsAnotherWay], ids=lambda schema: schema.__name__)
def test_a_schema_that_dumps_rows_its_own_way_is_refused_at_once(schema):
    with pytest.raises(TypeError, match="dumps a row differently"):
        RowJson(schema())
