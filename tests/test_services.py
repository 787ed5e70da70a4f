"""Services: anyone lists and reads; admins create, replace, patch and delete."""

from app.models import Benefit, Order
from tests.conftest import add_row

SERVICES = "/api/services"
NEW = {"name": "Oven cleaning", "description": "Inside and racks", "price_cents": 5500}


def create(client, admin, **overrides):
    """POST a service as admin."""
    return client.post(SERVICES, json=NEW | overrides, headers=admin.headers)


def test_admin_creates_a_service(client, admin):
    response = create(client, admin)
    assert response.status_code == 201
    assert response.json["price_cents"] == 5500 and response.json["active"] is True
    assert set(response.json) == {
        "id", "name", "description", "price_cents", "active", "created_at", "updated_at"
    }  # fmt: skip


def test_anyone_lists_and_reads_services(client, admin):
    service_id = create(client, admin).json["id"]
    page = client.get(SERVICES).json
    assert page["total"] == 1 and page["items"][0]["id"] == service_id
    assert (page["page"], page["per_page"]) == (1, 20)
    assert client.get(f"{SERVICES}/{service_id}").json["name"] == "Oven cleaning"


def test_list_filters_by_name_and_active(client, admin):
    create(client, admin, name="Oven cleaning")
    create(client, admin, name="Lawn mowing", active=False)
    assert [s["name"] for s in client.get(SERVICES, query_string={"q": "OVEN"}).json["items"]] == [
        "Oven cleaning"
    ]
    inactive = client.get(SERVICES, query_string={"active": "false"}).json["items"]
    assert [s["name"] for s in inactive] == ["Lawn mowing"]


def test_list_paginates(client, admin):
    for number in range(3):
        create(client, admin, name=f"Service {number}")
    page = client.get(SERVICES, query_string={"page": 2, "per_page": 2}).json
    assert (page["total"], len(page["items"]), page["items"][0]["name"]) == (3, 1, "Service 2")
    past_the_end = client.get(SERVICES, query_string={"page": 5, "per_page": 2}).json
    assert (past_the_end["total"], past_the_end["items"]) == (3, [])
    filtered = client.get(SERVICES, query_string={"q": "Service 1", "per_page": 1}).json
    assert (filtered["total"], len(filtered["items"])) == (1, 1)


def test_per_page_is_capped_at_100(client):
    response = client.get(SERVICES, query_string={"per_page": 101})
    assert response.status_code == 422
    assert "per_page" in response.json["error"]["fields"]
    assert client.get(SERVICES, query_string={"per_page": 100}).status_code == 200


def test_a_missing_service_is_404(client):
    response = client.get(f"{SERVICES}/999999", headers={"X-Request-ID": "r1"})
    assert response.status_code == 404
    error = {"code": "not_found", "message": "service not found", "request_id": "r1"}
    assert response.json == {"error": error}


def test_put_replaces_and_patch_changes(client, admin):
    service_id = create(client, admin).json["id"]
    url = f"{SERVICES}/{service_id}"
    replaced = client.put(url, json={"name": "Oven", "price_cents": 100}, headers=admin.headers)
    assert replaced.status_code == 200
    assert (replaced.json["description"], replaced.json["price_cents"]) == ("", 100)
    patched = client.patch(url, json={"active": False}, headers=admin.headers)
    assert (patched.json["active"], patched.json["name"]) == (False, "Oven")


def test_put_needs_every_required_field(client, admin):
    service_id = create(client, admin).json["id"]
    response = client.put(f"{SERVICES}/{service_id}", json={"name": "x"}, headers=admin.headers)
    assert response.status_code == 422
    assert set(response.json["error"]["fields"]) == {"price_cents"}


def test_writes_to_a_missing_service_are_404(client, admin):
    url = f"{SERVICES}/999999"
    assert client.put(url, json=NEW, headers=admin.headers).status_code == 404
    assert client.patch(url, json={"name": "x"}, headers=admin.headers).status_code == 404
    assert client.delete(url, headers=admin.headers).status_code == 404


def test_create_validates_fields(client, admin):
    response = create(client, admin, name="", price_cents=-1, id=7)
    assert response.status_code == 422
    assert set(response.json["error"]["fields"]) == {"name", "price_cents", "id"}


def test_money_must_be_a_json_integer(client, admin):
    for price in ("5500", 55.5):
        assert create(client, admin, price_cents=price).status_code == 422


def test_delete_removes_an_unreferenced_service(client, admin):
    service_id = create(client, admin).json["id"]
    assert client.delete(f"{SERVICES}/{service_id}", headers=admin.headers).status_code == 204
    assert client.get(f"{SERVICES}/{service_id}").status_code == 404


def test_delete_of_an_ordered_service_is_409_and_keeps_it(app, client, admin, customer):
    service_id = create(client, admin).json["id"]
    add_row(app, order_row(customer.id, service_id))
    response = client.delete(f"{SERVICES}/{service_id}", headers=admin.headers)
    assert response.status_code == 409
    assert "active" in response.json["error"]["message"]
    assert client.get(f"{SERVICES}/{service_id}").status_code == 200


def test_delete_of_a_service_a_benefit_names_is_409(app, client, admin):
    service_id = create(client, admin).json["id"]
    add_row(app, Benefit(code="OVEN", title="t", discount_percent=5, service_id=service_id))
    assert client.delete(f"{SERVICES}/{service_id}", headers=admin.headers).status_code == 409


def order_row(user_id: int, service_id: int) -> Order:
    """A pending order row for one unit at 10.00."""
    return Order(
        user_id=user_id,
        service_id=service_id,
        quantity=1,
        unit_price_cents=1000,
        discount_cents=0,
        total_cents=1000,
    )
