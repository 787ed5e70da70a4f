"""Benefits: anyone lists and reads; admins write; codes are unique whatever their case."""

from datetime import UTC, datetime

from app import create_app
from app.database import dispose_engines
from app.models import Benefit
from tests import pg
from tests.conftest import TEST_SETTINGS, add_row
from tests.test_services import order_row

BENEFITS = "/api/benefits"
NEW = {"code": "SPRING20", "title": "Spring sale", "discount_percent": 20}
FIELDS = {
    "id", "code", "title", "description", "discount_percent", "service_id", "active",
    "valid_from", "valid_until", "created_at", "updated_at",
}  # fmt: skip


def create(client, admin, **overrides):
    """POST a benefit as admin."""
    return client.post(BENEFITS, json=NEW | overrides, headers=admin.headers)


def test_admin_creates_a_benefit_for_every_service(client, admin):
    response = create(client, admin)
    assert response.status_code == 201
    assert set(response.json) == FIELDS
    assert (response.json["service_id"], response.json["valid_from"]) == (None, None)


def test_admin_creates_a_benefit_for_one_service_within_a_window(client, admin, service_id):
    window = {"valid_from": "2030-01-01T00:00:00+02:00", "valid_until": "2030-02-01T00:00:00Z"}
    response = create(client, admin, service_id=service_id, **window)
    assert response.status_code == 201
    assert response.json["service_id"] == service_id
    assert response.json["valid_from"] == "2029-12-31T22:00:00+00:00"


def test_codes_are_unique_whatever_their_case(client, admin):
    create(client, admin)
    response = create(client, admin, code="spring20")
    assert response.status_code == 409
    assert response.json["error"]["fields"] == {"code": ["Already in use."]}


def test_create_refuses_an_unknown_service(client, admin):
    response = create(client, admin, service_id=999999)
    assert response.status_code == 422
    assert response.json["error"]["fields"] == {"service_id": ["No such service."]}


def test_create_validates_percent_code_and_window(client, admin):
    window = {"valid_from": "2030-02-01T00:00:00Z", "valid_until": "2030-01-01T00:00:00Z"}
    response = create(client, admin, discount_percent=101, code="no spaces", **window)
    assert response.status_code == 422
    assert set(response.json["error"]["fields"]) >= {"discount_percent", "code"}
    response = create(client, admin, **window)
    assert response.json["error"]["fields"] == {"valid_until": ["Must be later than valid_from."]}


def test_patch_checks_the_window_it_would_leave(client, admin):
    benefit = create(client, admin, valid_until="2030-01-01T00:00:00Z").json
    url = f"{BENEFITS}/{benefit['id']}"
    response = client.patch(url, json={"valid_from": "2031-01-01T00:00:00Z"}, headers=admin.headers)
    assert response.status_code == 422


def test_list_filters_by_text_active_and_service(client, admin, service_id):
    create(client, admin)
    create(client, admin, code="GUTTER5", title="Gutters", service_id=service_id)
    create(client, admin, code="OLD", title="Old", active=False)
    by_service = client.get(BENEFITS, query_string={"service_id": service_id}).json
    assert [b["code"] for b in by_service["items"]] == ["GUTTER5"]
    by_text = client.get(BENEFITS, query_string={"q": "spring"}).json
    assert [b["code"] for b in by_text["items"]] == ["SPRING20"]
    inactive = client.get(BENEFITS, query_string={"active": "false"}).json
    assert [b["code"] for b in inactive["items"]] == ["OLD"]


def test_get_put_patch_delete(client, admin):
    benefit_id = create(client, admin).json["id"]
    url = f"{BENEFITS}/{benefit_id}"
    assert client.get(url).json["code"] == "SPRING20"
    replaced = client.put(url, json=NEW | {"title": "Renamed"}, headers=admin.headers)
    assert (replaced.status_code, replaced.json["title"]) == (200, "Renamed")
    patched = client.patch(url, json={"code": "spring20", "active": False}, headers=admin.headers)
    assert (patched.status_code, patched.json["code"], patched.json["active"]) == (
        200,
        "spring20",
        False,
    )
    assert client.delete(url, headers=admin.headers).status_code == 204
    assert client.get(url).status_code == 404


def test_a_missing_benefit_is_404(client, admin):
    assert client.get(f"{BENEFITS}/999999").status_code == 404
    assert client.patch(f"{BENEFITS}/999999", json={}, headers=admin.headers).status_code == 404


def test_delete_of_a_used_benefit_is_409(app, client, admin, customer, service_id, benefit_id):
    row = order_row(customer.id, service_id)
    row.benefit_id = benefit_id
    add_row(app, row)
    response = client.delete(f"{BENEFITS}/{benefit_id}", headers=admin.headers)
    assert response.status_code == 409
    assert client.get(f"{BENEFITS}/{benefit_id}").status_code == 200


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
            response = app.test_client().get(f"{BENEFITS}/{benefit_id}")
            assert response.json["valid_from"] == "1900-06-01T00:00:00+00:00"
            listed = app.test_client().get(BENEFITS).json["items"][0]
            assert listed["valid_from"] == "1900-06-01T00:00:00+00:00"
        finally:
            dispose_engines(app, close=True)


def test_a_window_outside_the_years_after_conversion_to_utc_is_422(client, admin):
    for field, moment in (
        ("valid_until", "9000-12-31T23:00:00-05:00"),
        ("valid_from", "1900-01-01T00:30:00+01:00"),
    ):
        response = create(client, admin, code=f"EDGE{len(moment)}{field[6]}", **{field: moment})
        assert response.status_code == 422, (field, response.json)
        assert set(response.json["error"]["fields"]) == {field}
