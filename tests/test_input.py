"""Bad input gets the one error shape: 400, 413, 415, 422; and nothing is written."""

import json

import pytest
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


def place_order(client, customer, service_id) -> int:
    """Create an order for customer; return its id."""
    body = {"service_id": service_id, "quantity": 1}
    return client.post(ORDERS, json=body, headers=customer.headers).json["id"]


def test_ids_are_ascii_digits_without_leading_zeros(client, customer, service_id):
    order_id = place_order(client, customer, service_id)
    assert client.get(f"{ORDERS}/{order_id}", headers=customer.headers).status_code == 200
    arabic_indic = str(order_id).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    for spelling in (f"0{order_id}", arabic_indic, f"{order_id}%0A", f"+{order_id}"):
        response = client.get(f"{ORDERS}/{spelling}", headers=customer.headers)
        assert_error_shape(response, 404, "not_found")


@pytest.mark.parametrize("if_match", ['"²"', '"١"', '"01"', '"1 "', '"-1"', '"99999999999"'])
def test_if_match_takes_the_etag_as_sent(client, customer, service_id, if_match):
    order_id = place_order(client, customer, service_id)
    headers = customer.headers | {"If-Match": if_match}
    response = client.patch(f"{ORDERS}/{order_id}", json={"notes": "x"}, headers=headers)
    assert_error_shape(response, 422, "validation_error")
    assert set(response.json["error"]["fields"]) == {"If-Match"}


def test_phones_and_codes_match_their_pattern_whole(client, customer, admin):
    response = client.patch(
        "/api/user/profile", json={"phone": "555 0100\n"}, headers=customer.headers
    )
    assert_error_shape(response, 422, "validation_error")
    body = {"code": "NL1\n", "title": "t", "discount_percent": 1}
    response = client.post("/api/benefits", json=body, headers=admin.headers)
    assert_error_shape(response, 422, "validation_error")


@pytest.mark.parametrize(
    "body",
    ["[" * 8000, '{"quantity": ' + "9" * 5000 + "}", '{"a": ' + "[" * 2000 + "]" * 2000 + "}"],
    ids=["nested 8,000 deep", "an integer of 5,000 digits", "nested 2,000 deep"],
)
@pytest.mark.parametrize("path", [ORDERS, "/api/auth/login", "/api/auth/register"])
def test_json_no_parser_can_hold_is_400(client, customer, body, path):
    response = client.post(
        path, data=body, content_type="application/json", headers=customer.headers
    )
    assert_error_shape(response, 400, "bad_request")


def test_a_422_stays_small_whatever_the_body(client, customer):
    unknown = {f"{number:03d}" + "k" * 200: 1 for number in range(100)}
    response = client.post(ORDERS, json=unknown, headers=customer.headers)
    assert_error_shape(response, 422, "validation_error")
    fields = response.json["error"]["fields"]
    assert len(fields) == 20 and all(len(name) <= 65 for name in fields)
    assert len(response.data) < 4096
    assert "the first 20 listed" in response.json["error"]["message"]


@pytest.mark.parametrize("path", ["/api/auth/register", "/api/auth/login", "/api/user/profile"])
def test_a_body_over_what_an_auth_or_profile_route_needs_is_413(client, customer, path):
    body = {"email": "a@example.com", "password": "a long password", "name": "x" * 9000}
    send = client.patch if path == "/api/user/profile" else client.post
    response = send(path, json=body, headers=customer.headers)
    assert_error_shape(response, 413, "request_entity_too_large")


def test_the_longest_profile_change_fits_its_limit(client, customer):
    astral = "\U0001f600"
    body = {"name": astral * 200, "current_password": astral * 128, "new_password": astral * 128}
    escaped = json.dumps(body)  # each character as a \u surrogate pair: 12 bytes
    response = client.patch(
        "/api/user/profile", data=escaped, content_type="application/json", headers=customer.headers
    )
    assert response.status_code != 413


def test_doubled_slashes_are_404_in_the_shape_not_an_html_redirect(client):
    for path in ("/api//services", "/api/services//1", "/api/orders/"):
        assert_error_shape(client.get(path), 404, "not_found")


def test_a_key_no_utf8_answer_can_carry_is_named_escaped_not_a_500(client):
    body = '{"email": "a@b.co", "password": "x", "\\ud800": 1}'
    response = client.post(
        "/api/auth/login", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert "\\ud800" in response.json["error"]["fields"]  # the key, backslash-escaped


def test_options_answers_204_with_allow_not_an_empty_html_page(client):
    response = client.options("/api/services")
    assert response.status_code == 204
    assert "text/html" not in response.headers.get("Content-Type", "")
    assert {"GET", "POST"} <= set(response.headers["Allow"].replace(" ", "").split(","))
