"""The Core read behind GET /api/services/<id> answers exactly what the ORM object did."""

from app.database import transaction
from app.models import Service
from app.schemas.service import ServiceSchema


def test_a_service_reads_the_same_as_its_orm_object(app, client):
    with app.app_context(), transaction() as session:
        service = Service(name="Read me", description="Core, not ORM", price_cents=1234)
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
