"""Bad input gets the one error shape: 400, 413, 415, 422; and nothing is written."""

import sqlalchemy as sa

from app.extensions import db
from app.models import Order

ORDERS = "/api/orders"


def assert_error_shape(response, status, code):
    """The body is SPEC's {"error": {"code", "message", "fields"?, "request_id"}} and no more."""
    assert response.status_code == status
    assert response.is_json
    assert set(response.json) == {"error"}
    assert set(response.json["error"]) <= {"code", "message", "fields", "request_id"}
    assert response.json["error"]["request_id"] == response.headers["X-Request-ID"]
    assert response.json["error"]["code"] == code
    assert response.json["error"]["message"]


def test_malformed_json_is_400(client, customer):
    response = client.post(
        ORDERS, data='{"service_id": 1,', content_type="application/json", headers=customer.headers
    )
    assert_error_shape(response, 400, "bad_request")
    assert response.json["error"]["message"] == "Invalid JSON body."


def test_a_body_that_is_not_json_is_415(client, customer):
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        response = client.post(
            ORDERS, data="service_id=1", content_type=content_type, headers=customer.headers
        )
        assert_error_shape(response, 415, "unsupported_media_type")


def test_a_body_over_one_mebibyte_is_413(client, customer):
    body = '{"notes": "' + "x" * (1024 * 1024) + '"}'
    response = client.post(
        ORDERS, data=body, content_type="application/json", headers=customer.headers
    )
    assert_error_shape(response, 413, "request_entity_too_large")


def test_unknown_fields_are_422_and_listed(app, client, customer, service_id):
    body = {"service_id": service_id, "quantity": 1, "colour": "red", "user_id": 1}
    response = client.post(ORDERS, json=body, headers=customer.headers)
    assert_error_shape(response, 422, "validation_error")
    assert response.json["error"]["fields"] == {
        "colour": ["Unknown field."],
        "user_id": ["Unknown field."],
    }
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Order)) == 0


def test_unknown_query_parameters_are_422(client):
    response = client.get("/api/services", query_string={"sort": "name"})
    assert_error_shape(response, 422, "validation_error")
    assert response.json["error"]["fields"] == {"sort": ["Unknown field."]}


def test_a_json_body_that_is_not_an_object_is_422(client, customer):
    response = client.post(ORDERS, json=[1, 2], headers=customer.headers)
    assert_error_shape(response, 422, "validation_error")


def test_text_the_database_cannot_store_is_422(client, customer, service_id):
    body = {"service_id": service_id, "quantity": 1, "notes": "a\x00b"}
    response = client.post(ORDERS, json=body, headers=customer.headers)
    assert_error_shape(response, 422, "validation_error")
    assert set(response.json["error"]["fields"]) == {"notes"}


def test_ids_beyond_the_database_range_are_404(client, customer):
    response = client.get(f"{ORDERS}/{2**31}", headers=customer.headers)
    assert_error_shape(response, 404, "not_found")


def test_dates_out_of_range_are_422(client, admin):
    body = {"code": "Y1", "title": "t", "discount_percent": 1, "valid_from": "0001-01-01T00:00:00Z"}
    response = client.post("/api/benefits", json=body, headers=admin.headers)
    assert_error_shape(response, 422, "validation_error")


def test_unknown_routes_and_methods_keep_the_shape(client):
    assert_error_shape(client.get("/api/nothing-here"), 404, "not_found")
    response = client.delete("/api/services")
    assert_error_shape(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]
