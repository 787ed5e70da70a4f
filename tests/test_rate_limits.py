"""The lockout policy: guesses are bounded per email and address; one address locks out no one."""

from app.api.auth import LOGINS_PER_CLIENT, LOGINS_PER_EMAIL
from tests.conftest import PASSWORD

PROFILE = "/api/user/profile"
WRONG = "not the password"


def register(client, number: int, address="10.0.0.1"):
    """POST /api/auth/register a new user from a client address."""
    body = {"email": f"new{number}@example.com", "password": PASSWORD, "name": "New"}
    return client.post("/api/auth/register", json=body, environ_base={"REMOTE_ADDR": address})


def change_password(client, caller, current: str):
    """PATCH the caller's password, giving current as the current one."""
    changes = {"current_password": current, "new_password": "a brand new secret"}
    return client.patch(PROFILE, json=changes, headers=caller.headers)


def assert_too_many(response, window_s: int = 15 * 60) -> None:
    """A 429 in the error shape, saying when (within the window) to come back."""
    assert response.status_code == 429
    assert response.json["error"]["code"] == "too_many_requests"
    assert 0 < int(response.headers["Retry-After"]) <= window_s


def test_five_wrong_passwords_from_one_address_hold_back_even_the_right_one(auth, customer):
    assert [auth.login(customer.email, WRONG).status_code for _ in range(5)] == [401] * 5
    assert_too_many(auth.login(customer.email))


def test_one_address_cannot_lock_the_owner_out_of_another(auth, customer):
    for _ in range(8):
        auth.login(customer.email, WRONG, address="10.6.6.6")
    assert auth.login(customer.email, address="10.0.0.2").status_code == 200


def test_a_successful_login_forgets_the_failed_ones_before_it(auth, customer):
    for _ in range(3):
        assert [auth.login(customer.email, WRONG).status_code for _ in range(4)] == [401] * 4
        assert auth.login(customer.email).status_code == 200


def test_many_addresses_meet_the_ceiling_of_one_email(auth, customer):
    for address in range(10):
        for _ in range(5):
            assert auth.login(customer.email, WRONG, f"10.1.0.{address}").status_code == 401
    assert_too_many(auth.login(customer.email, address="10.2.0.1"))


def test_an_address_over_its_allowance_counts_against_no_one_elses_email(auth, customer):
    guesser = "10.7.7.7"
    allowance = LOGINS_PER_CLIENT.allowance.amount
    for number in range(allowance):  # Spent on unknown emails: only its own window fills.
        assert auth.login(f"nobody{number}@example.com", WRONG, guesser).status_code == 401
    ceiling = LOGINS_PER_EMAIL.allowance.amount
    for _ in range(ceiling):
        assert_too_many(auth.login(customer.email, WRONG, guesser))
    # Had those counted against the email, its ceiling would hold back the owner too.
    assert auth.login(customer.email, address="10.0.0.3").status_code == 200


def test_one_ipv6_subscriber_is_one_address(auth, customer):
    for host in range(5):
        auth.login(customer.email, WRONG, f"2001:db8:1:2::{host + 1}")
    assert_too_many(auth.login(customer.email, address="2001:db8:1:2:ffff::9"))
    assert auth.login(customer.email, address="2001:db8:1:3::1").status_code == 200


def test_registrations_from_one_address_are_limited(client):
    assert [register(client, number).status_code for number in range(10)] == [201] * 10
    assert_too_many(register(client, 10), window_s=3600)
    assert register(client, 11, address="10.0.0.2").status_code == 201


def test_guesses_at_the_current_password_are_limited(client, customer):
    assert [change_password(client, customer, WRONG).status_code for _ in range(5)] == [422] * 5
    assert_too_many(change_password(client, customer, PASSWORD))


def test_a_password_change_forgets_the_wrong_guesses_before_it(client, customer):
    for _ in range(4):
        change_password(client, customer, WRONG)
    assert change_password(client, customer, PASSWORD).status_code == 200


def test_a_password_change_without_the_current_password_is_not_counted(client, customer):
    for _ in range(8):
        response = client.patch(PROFILE, json={"name": "Grace"}, headers=customer.headers)
        assert response.status_code == 200


def test_retry_after_only_on_429(client, auth, customer):
    assert "Retry-After" not in auth.login(customer.email).headers
    assert "Retry-After" not in auth.login(customer.email, WRONG).headers
    assert "Retry-After" not in client.get(PROFILE, headers=customer.headers).headers
