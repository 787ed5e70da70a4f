"""OWASP API3: fields a customer may not set are refused (422) and nothing changes."""

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Order, User

ORDERS = "/api/orders"
FORBIDDEN = {"role": "admin", "user_id": 1, "total_cents": 1, "status": "completed", "id": 1}


def order_rows(app) -> list[tuple]:
    """Every order row's columns, to compare before and after."""
    with app.app_context():
        return [tuple(row) for row in db.session.execute(sa.select(Order.__table__)).all()]


def user_rows(app) -> list[tuple]:
    """Every user row's columns, to compare before and after."""
    with app.app_context():
        return [tuple(row) for row in db.session.execute(sa.select(User.__table__)).all()]


@pytest.fixture
def order(client, customer, service_id):
    """A pending order of customer."""
    return client.post(
        ORDERS, json={"service_id": service_id, "quantity": 1}, headers=customer.headers
    ).json


@pytest.mark.parametrize(("field", "value"), FORBIDDEN.items())
def test_creating_an_order_with_a_forbidden_field_is_422(
    app, client, customer, service_id, field, value
):
    body = {"service_id": service_id, "quantity": 1, field: value}
    response = client.post(ORDERS, json=body, headers=customer.headers)
    assert response.status_code == 422
    assert field in response.json["error"]["fields"]
    assert order_rows(app) == []


@pytest.mark.parametrize("method", ["put", "patch"])
@pytest.mark.parametrize(("field", "value"), FORBIDDEN.items())
def test_changing_an_order_with_a_forbidden_field_is_422(
    app, client, customer, order, method, field, value
):
    before = order_rows(app)
    body = {"quantity": 1, "version": 1, field: value}
    response = getattr(client, method)(
        f"{ORDERS}/{order['id']}", json=body, headers=customer.headers
    )
    assert response.status_code == 422
    assert field in response.json["error"]["fields"]
    assert order_rows(app) == before


@pytest.mark.parametrize(("field", "value"), FORBIDDEN.items())
def test_profile_changes_with_a_forbidden_field_are_422(app, client, customer, field, value):
    before = user_rows(app)
    response = client.patch("/api/user/profile", json={field: value}, headers=customer.headers)
    assert response.status_code == 422
    assert user_rows(app) == before


def test_registering_with_a_role_is_422_and_creates_nobody(app, client):
    before = user_rows(app)
    body = {"email": "m@example.com", "password": "long enough", "name": "M", "role": "admin"}
    assert client.post("/api/auth/register", json=body).status_code == 422
    assert user_rows(app) == before
