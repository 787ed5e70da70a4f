"""One read path: reads commit on their own and give their connection back; writes are units."""

import sqlalchemy as sa
from psycopg2.extensions import TRANSACTION_STATUS_IDLE, TRANSACTION_STATUS_INTRANS

from app.database import transaction
from app.extensions import db
from app.models import Service
from app.schemas.service import ServiceSchema


def test_a_service_reads_as_its_schema_dumps_it(app, client):
    with app.app_context(), transaction() as session:
        service = Service(name="Read me", description="One read path", price_cents=1234)
        session.add(service)
        session.flush()
        expected = ServiceSchema().dump(service)
    response = client.get(f"/api/services/{expected['id']}")
    assert response.status_code == 200
    assert response.json == expected


def test_a_missing_service_is_a_404_in_the_one_error_shape(client):
    response = client.get("/api/services/987654")
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


def transaction_statuses(app) -> list[int]:
    """A list that fills with libpq's transaction status after each statement."""
    statuses = []

    def record(connection, cursor, *_):
        statuses.append(cursor.connection.get_transaction_status())

    with app.app_context():
        sa.event.listen(db.engine, "after_cursor_execute", record)
    return statuses, record


def test_signed_in_reads_open_no_transaction_and_writes_still_do(app, client, customer):
    statuses, record = transaction_statuses(app)
    try:
        assert client.get("/api/orders", headers=customer.headers).status_code == 200
        assert client.get("/api/services/1").status_code == 404
        assert len(statuses) == 3  # token, the page with its total; service
        assert set(statuses) == {TRANSACTION_STATUS_IDLE}
        statuses.clear()
        order = {"service_id": 1, "quantity": 1}
        response = client.post("/api/orders", json=order, headers=customer.headers)
        assert response.status_code == 422
        assert statuses[0] == TRANSACTION_STATUS_IDLE  # the token, read on its own
        assert set(statuses[1:]) == {TRANSACTION_STATUS_INTRANS}
    finally:
        with app.app_context():
            sa.event.remove(db.engine, "after_cursor_execute", record)


def test_no_request_leaves_a_connection_checked_out(app, client, customer):
    client.get("/api/orders", headers=customer.headers)
    client.post("/api/orders", json={"service_id": 1, "quantity": 1}, headers=customer.headers)
    client.get("/api/services/1")
    with app.app_context():
        assert db.engine.pool.checkedout() == 0
