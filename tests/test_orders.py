"""Orders: server pricing, benefits, Idempotency-Key, versions, status rules, cancel."""

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Benefit, Order, Service
from app.orders import discount_cents
from tests.conftest import add_row

ORDERS = "/api/orders"
FIELDS = {
    "id", "user_id", "service_id", "benefit_code", "quantity", "unit_price_cents",
    "discount_percent", "discount_cents", "total_cents", "status", "notes", "version",
    "created_at", "updated_at",
}  # fmt: skip


def place(client, caller, service_id, key=None, **body):
    """POST an order for caller, with an Idempotency-Key when key is given."""
    headers = caller.headers | ({"Idempotency-Key": key} if key else {})
    return client.post(
        ORDERS, json={"service_id": service_id, "quantity": 1} | body, headers=headers
    )


def count_orders(app) -> int:
    """How many order rows there are."""
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(Order))


@pytest.mark.parametrize(
    ("subtotal", "percent", "discount"),
    [(3000, 15, 450), (333, 15, 50), (5, 10, 1), (4, 10, 0), (999, 0, 0), (999, 100, 999)],
)
def test_discounts_round_half_up_to_the_cent(subtotal, percent, discount):
    assert discount_cents(subtotal, percent) == discount


def test_the_server_prices_an_order(client, customer, service_id, benefit_id):
    response = place(client, customer, service_id, quantity=3, benefit_code="save15", notes="gate")
    assert response.status_code == 201
    order = response.json
    assert set(order) == FIELDS
    assert (order["unit_price_cents"], order["discount_cents"], order["total_cents"]) == (
        1000,
        450,
        2550,
    )
    assert (order["benefit_code"], order["status"], order["version"]) == ("SAVE15", "pending", 1)
    assert response.headers["ETag"] == '"1"'
    assert response.headers["Location"] == f"{ORDERS}/{order['id']}"


def test_an_order_without_a_benefit_pays_full_price(client, customer, service_id):
    order = place(client, customer, service_id, quantity=2).json
    assert (order["discount_cents"], order["total_cents"], order["benefit_code"]) == (0, 2000, None)


def test_prices_are_snapshots(app, client, admin, customer, service_id):
    order = place(client, customer, service_id).json
    client.patch(f"/api/services/{service_id}", json={"price_cents": 9999}, headers=admin.headers)
    assert (
        client.get(f"{ORDERS}/{order['id']}", headers=customer.headers).json["total_cents"] == 1000
    )


def test_client_prices_are_refused(client, customer, service_id):
    response = place(client, customer, service_id, total_cents=1, unit_price_cents=1)
    assert response.status_code == 422
    assert set(response.json["error"]["fields"]) == {"total_cents", "unit_price_cents"}


def benefit(app, **fields) -> str:
    """Add a benefit and return its code."""
    code = fields.setdefault("code", "B" + str(abs(hash(tuple(sorted(fields))))))
    add_row(app, Benefit(title="t", discount_percent=10, **fields))
    return code


@pytest.mark.parametrize(
    "fields",
    [
        {"active": False},
        {"valid_from": datetime.now(UTC) + timedelta(days=1)},
        {"valid_until": datetime.now(UTC) - timedelta(seconds=1)},
    ],
    ids=["inactive", "not-yet-valid", "expired"],
)
def test_a_benefit_out_of_force_is_422(app, client, customer, service_id, fields):
    code = benefit(app, **fields)
    response = place(client, customer, service_id, benefit_code=code)
    assert response.status_code == 422
    assert set(response.json["error"]["fields"]) == {"benefit_code"}


def test_a_benefit_applies_only_to_its_service(app, client, customer, service_id):
    other = add_row(app, Service(name="Other", price_cents=500))
    code = benefit(app, code="OTHERONLY", service_id=other)
    assert place(client, customer, service_id, benefit_code=code).status_code == 422
    assert place(client, customer, other, benefit_code=code).json["discount_cents"] == 50


def test_a_benefit_inside_its_window_applies(app, client, customer, service_id):
    now = datetime.now(UTC)
    code = benefit(app, valid_from=now - timedelta(days=1), valid_until=now + timedelta(days=1))
    assert place(client, customer, service_id, benefit_code=code).json["discount_cents"] == 100


def test_an_unknown_benefit_code_is_422(client, customer, service_id):
    assert place(client, customer, service_id, benefit_code="NOPE").status_code == 422


def test_an_unknown_or_inactive_service_is_422(app, client, customer):
    inactive = add_row(app, Service(name="Gone", price_cents=1, active=False))
    for service_id in (inactive, 999999):
        response = place(client, customer, service_id)
        assert response.status_code == 422
        assert set(response.json["error"]["fields"]) == {"service_id"}


def test_quantity_must_be_positive(client, customer, service_id):
    for quantity in (0, -1, 1001, "2"):
        assert place(client, customer, service_id, quantity=quantity).status_code == 422


def test_lists_show_own_orders_and_admins_see_all(
    client, customer, other_customer, admin, service_id
):
    mine = place(client, customer, service_id).json["id"]
    theirs = place(client, other_customer, service_id).json["id"]
    assert [o["id"] for o in client.get(ORDERS, headers=customer.headers).json["items"]] == [mine]
    everyone = client.get(ORDERS, headers=admin.headers).json
    assert [o["id"] for o in everyone["items"]] == [mine, theirs]


def test_list_filters_by_status(client, customer, service_id):
    first = place(client, customer, service_id).json["id"]
    place(client, customer, service_id)
    client.delete(f"{ORDERS}/{first}", headers=customer.headers)
    cancelled = client.get(ORDERS, query_string={"status": "cancelled"}, headers=customer.headers)
    assert [o["id"] for o in cancelled.json["items"]] == [first]


def test_same_idempotency_key_returns_the_first_order(app, client, customer, service_id):
    first = place(client, customer, service_id, key="k-1", quantity=2)
    again = place(client, customer, service_id, key="k-1", quantity=2)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json == first.json
    assert again.headers["Idempotent-Replayed"] == "true"
    assert count_orders(app) == 1


def test_same_key_with_a_different_body_is_422(app, client, customer, service_id):
    place(client, customer, service_id, key="k-1", quantity=2)
    response = place(client, customer, service_id, key="k-1", quantity=3)
    assert response.status_code == 422
    assert response.json["error"]["code"] == "idempotency_key_reused"
    assert count_orders(app) == 1


def test_keys_belong_to_one_user(app, client, customer, other_customer, service_id):
    place(client, customer, service_id, key="shared")
    assert place(client, other_customer, service_id, key="shared").status_code == 201
    assert count_orders(app) == 2


def test_without_a_key_each_post_creates_an_order(app, client, customer, service_id):
    place(client, customer, service_id)
    place(client, customer, service_id)
    assert count_orders(app) == 2


@pytest.fixture
def order(client, customer, service_id, benefit_id):
    """A pending order of customer: 2 units at 10.00 with SAVE15."""
    return place(client, customer, service_id, quantity=2, benefit_code="SAVE15").json


def test_get_shows_the_order_with_its_etag(client, customer, order):
    response = client.get(f"{ORDERS}/{order['id']}", headers=customer.headers)
    assert response.json == order
    assert response.headers["ETag"] == '"1"'


def test_a_missing_order_is_404(client, customer):
    assert client.get(f"{ORDERS}/999999", headers=customer.headers).status_code == 404


def test_patch_with_the_body_version_reprices_from_the_snapshots(client, customer, order):
    url = f"{ORDERS}/{order['id']}"
    response = client.patch(url, json={"quantity": 4, "version": 1}, headers=customer.headers)
    assert response.status_code == 200
    changed = response.json
    assert (changed["quantity"], changed["discount_cents"], changed["total_cents"]) == (
        4,
        600,
        3400,
    )
    assert (changed["version"], response.headers["ETag"]) == (2, '"2"')


def test_put_with_if_match_replaces_quantity_and_notes(client, customer, order):
    headers = customer.headers | {"If-Match": '"1"'}
    response = client.put(f"{ORDERS}/{order['id']}", json={"quantity": 1}, headers=headers)
    assert response.status_code == 200
    assert (response.json["quantity"], response.json["notes"], response.json["version"]) == (
        1,
        "",
        2,
    )


def test_a_stale_version_is_409_and_changes_nothing(client, customer, order):
    url = f"{ORDERS}/{order['id']}"
    client.patch(url, json={"notes": "first", "version": 1}, headers=customer.headers)
    stale = client.patch(url, json={"notes": "second", "version": 1}, headers=customer.headers)
    assert stale.status_code == 409
    stale_header = client.put(
        url, json={"quantity": 9}, headers=customer.headers | {"If-Match": 'W/"1"'}
    )
    assert stale_header.status_code == 409
    assert client.get(url, headers=customer.headers).json["notes"] == "first"


def test_a_write_without_a_version_is_422(client, customer, order):
    response = client.patch(
        f"{ORDERS}/{order['id']}", json={"notes": "x"}, headers=customer.headers
    )
    assert response.status_code == 422
    assert set(response.json["error"]["fields"]) == {"version"}


def test_body_version_and_if_match_must_agree(client, customer, order):
    headers = customer.headers | {"If-Match": '"2"'}
    response = client.patch(f"{ORDERS}/{order['id']}", json={"version": 1}, headers=headers)
    assert response.status_code == 422
    bad = client.patch(
        f"{ORDERS}/{order['id']}", json={}, headers=customer.headers | {"If-Match": "*x"}
    )
    assert set(bad.json["error"]["fields"]) == {"If-Match"}


def test_customers_may_not_change_the_status(client, customer, order):
    url = f"{ORDERS}/{order['id']}"
    body = {"status": "confirmed", "version": 1}
    response = client.patch(url, json=body, headers=customer.headers)
    assert response.status_code == 422
    assert set(response.json["error"]["fields"]) == {"status"}
    assert client.get(url, headers=customer.headers).json["status"] == "pending"


def advance(client, admin, order_id, status, version):
    """PATCH an order's status as admin."""
    body = {"status": status, "version": version}
    return client.patch(f"{ORDERS}/{order_id}", json=body, headers=admin.headers)


def test_admins_move_orders_along(client, admin, order):
    confirmed = advance(client, admin, order["id"], "confirmed", 1)
    assert (confirmed.status_code, confirmed.json["status"]) == (200, "confirmed")
    completed = advance(client, admin, order["id"], "completed", 2)
    assert (completed.status_code, completed.json["status"]) == (200, "completed")


@pytest.mark.parametrize(
    ("path", "forbidden"),
    [((), "completed"), (("confirmed",), "pending"), (("confirmed", "completed"), "cancelled")],
)
def test_forbidden_transitions_are_409(client, admin, order, path, forbidden):
    for version, status in enumerate(path, start=1):
        advance(client, admin, order["id"], status, version)
    response = advance(client, admin, order["id"], forbidden, len(path) + 1)
    assert response.status_code == 409


def test_only_pending_orders_can_be_edited(client, admin, customer, order):
    advance(client, admin, order["id"], "confirmed", 1)
    body = {"quantity": 5, "version": 2}
    response = client.patch(f"{ORDERS}/{order['id']}", json=body, headers=customer.headers)
    assert response.status_code == 409


def test_delete_cancels_and_keeps_the_row(client, customer, order):
    response = client.delete(f"{ORDERS}/{order['id']}", headers=customer.headers)
    assert (response.status_code, response.json["status"]) == (200, "cancelled")
    again = client.delete(f"{ORDERS}/{order['id']}", headers=customer.headers)
    assert (again.status_code, again.json["version"]) == (200, 2)
    assert client.get(f"{ORDERS}/{order['id']}", headers=customer.headers).status_code == 200


def test_owners_cancel_only_pending_orders_admins_also_confirmed(client, admin, customer, order):
    advance(client, admin, order["id"], "confirmed", 1)
    assert client.delete(f"{ORDERS}/{order['id']}", headers=customer.headers).status_code == 409
    response = client.delete(f"{ORDERS}/{order['id']}", headers=admin.headers)
    assert (response.status_code, response.json["status"]) == (200, "cancelled")


def test_completed_orders_cannot_be_cancelled(client, admin, order):
    advance(client, admin, order["id"], "confirmed", 1)
    advance(client, admin, order["id"], "completed", 2)
    assert client.delete(f"{ORDERS}/{order['id']}", headers=admin.headers).status_code == 409


def test_delete_with_a_stale_if_match_is_409(client, customer, order):
    client.patch(
        f"{ORDERS}/{order['id']}", json={"notes": "x", "version": 1}, headers=customer.headers
    )
    headers = customer.headers | {"If-Match": '"1"'}
    assert client.delete(f"{ORDERS}/{order['id']}", headers=headers).status_code == 409


def test_if_match_compares_strongly_a_weak_etag_never_matches(client, customer, order):
    url = f"{ORDERS}/{order['id']}"
    weak = client.patch(url, json={"notes": "x"}, headers=customer.headers | {"If-Match": 'W/"1"'})
    assert weak.status_code == 409
    strong = client.patch(url, json={"notes": "x"}, headers=customer.headers | {"If-Match": '"1"'})
    assert strong.status_code == 200


@pytest.mark.parametrize("if_match", ['"1', '1"', "1", 'W/"1'])
def test_if_match_that_is_not_an_entity_tag_is_422(client, customer, order, if_match):
    url = f"{ORDERS}/{order['id']}"
    response = client.patch(
        url, json={"notes": "x"}, headers=customer.headers | {"If-Match": if_match}
    )
    assert response.status_code == 422
    assert set(response.json["error"]["fields"]) == {"If-Match"}


@pytest.mark.parametrize(
    ("sent", "stored"),
    [("İNTRO5", "INTRO5"), ("\u212aIDS5", "KIDS5")],
    ids=["dotted capital I", "Kelvin sign"],
)
def test_a_benefit_code_beyond_ascii_is_422(app, client, customer, service_id, sent, stored):
    add_row(app, Benefit(code=stored, title="Folded", discount_percent=5))
    response = place(client, customer, service_id, benefit_code=sent)
    assert response.status_code == 422
    assert set(response.json["error"]["fields"]) == {"benefit_code"}
