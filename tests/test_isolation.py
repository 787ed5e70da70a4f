"""Each test sees the migrated schema and none of the rows another test wrote."""

import sqlalchemy as sa

from app.database import transaction
from app.extensions import db
from app.models import Service

NAME = "written by the first isolation test"


def test_a_test_writes_and_commits(app, client):
    with app.app_context(), transaction() as session:
        session.add(Service(name=NAME, price_cents=100))
    response = client.get("/api/services", query_string={"q": NAME})
    assert response.json["total"] == 1


def test_the_next_test_does_not_see_it(app, client):
    with app.app_context():
        count = db.session.scalar(sa.select(sa.func.count()).where(Service.name == NAME))
    assert count == 0
    assert client.get("/api/services", query_string={"q": NAME}).json["total"] == 0
