"""OWASP API5: a customer on any admin route gets 403 and changes nothing."""

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Benefit, Service

ADMIN_ROUTES = [
    ("post", "/api/services"),
    ("put", "/api/services/{service_id}"),
    ("patch", "/api/services/{service_id}"),
    ("delete", "/api/services/{service_id}"),
    ("post", "/api/benefits"),
    ("put", "/api/benefits/{benefit_id}"),
    ("patch", "/api/benefits/{benefit_id}"),
    ("delete", "/api/benefits/{benefit_id}"),
]
BODIES = {
    "/api/services": {"name": "Free stuff", "price_cents": 0},
    "/api/benefits": {"code": "ALLFREE", "title": "All free", "discount_percent": 100},
}


def catalogue(app) -> list[tuple]:
    """Every service and benefit row, to compare before and after."""
    with app.app_context():
        services = db.session.execute(sa.select(Service.__table__)).all()
        benefits = db.session.execute(sa.select(Benefit.__table__)).all()
    return [tuple(row) for row in [*services, *benefits]]


def test_the_list_covers_every_admin_route(app):
    writes = {
        (method.lower(), rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith(("/api/services", "/api/benefits"))
        for method in rule.methods - {"GET", "HEAD", "OPTIONS"}
    }
    assert len(writes) == len(ADMIN_ROUTES)


@pytest.mark.parametrize(("method", "route"), ADMIN_ROUTES)
def test_a_customer_on_an_admin_route_is_403(
    app, client, customer, service_id, benefit_id, method, route
):
    before = catalogue(app)
    url = route.format(service_id=service_id, benefit_id=benefit_id)
    body = BODIES[route.split("/{")[0]]
    response = getattr(client, method)(url, json=body, headers=customer.headers)
    assert response.status_code == 403
    assert response.json["error"]["code"] == "forbidden"
    assert catalogue(app) == before
