"""OWASP API1: another user's orders are invisible and untouchable (404, rows unchanged)."""

import pytest

ORDERS = "/api/orders"


@pytest.fixture
def victims_order(client, customer, service_id):
    """An order of customer (user A), as A reads it."""
    body = {"service_id": service_id, "quantity": 2, "notes": "A's"}
    return client.post(ORDERS, json=body, headers=customer.headers).json


ATTEMPTS = [
    ("get", None),
    ("put", {"quantity": 9, "notes": "B was here", "version": 1}),
    ("patch", {"quantity": 9, "version": 1}),
    ("delete", None),
]


@pytest.mark.parametrize(("method", "body"), ATTEMPTS, ids=[m for m, _ in ATTEMPTS])
def test_another_users_order_is_404_and_unchanged(
    client, customer, other_customer, victims_order, method, body
):
    url = f"{ORDERS}/{victims_order['id']}"
    response = getattr(client, method)(url, json=body, headers=other_customer.headers)
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"
    assert client.get(url, headers=customer.headers).json == victims_order


def test_the_404_is_the_same_as_for_a_missing_order(client, other_customer, victims_order):
    headers = {**other_customer.headers, "X-Request-ID": "same-id"}  # Bodies name the request.
    theirs = client.get(f"{ORDERS}/{victims_order['id']}", headers=headers)
    missing = client.get(f"{ORDERS}/999999", headers=headers)
    assert theirs.json == missing.json


def test_lists_never_contain_another_users_orders(client, other_customer, victims_order):
    for query in ({}, {"status": "pending"}, {"per_page": 100}):
        page = client.get(ORDERS, query_string=query, headers=other_customer.headers).json
        assert page["items"] == [] and page["total"] == 0


def test_an_idempotency_key_never_returns_another_users_order(
    client, customer, other_customer, service_id
):
    body = {"service_id": service_id, "quantity": 1}
    first = client.post(ORDERS, json=body, headers=customer.headers | {"Idempotency-Key": "k"})
    second = client.post(
        ORDERS, json=body, headers=other_customer.headers | {"Idempotency-Key": "k"}
    )
    assert second.json["id"] != first.json["id"]
    assert second.json["user_id"] == other_customer.id
