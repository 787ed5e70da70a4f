"""Register, sign in and sign out."""

from flask.views import MethodView
from limits import parse

from app.api.access import current_token, current_user
from app.api.blueprint import Blueprint, not_stored
from app.database import reading, transaction
from app.errors import ApiError
from app.models import User
from app.models.base import insert_unless_taken, utcnow
from app.rate_limits import Limit, by_client, by_email, by_email_and_client, limited
from app.schemas.user import LoginSchema, ProfileSchema, RegisterSchema, TokenSchema
from app.security import (
    find_user_by_email,
    hash_password,
    issue_token,
    password_matches,
    revoke_tokens,
)

# Sign-in attempts, counted before the password is checked (README, "Rate limits"). A
# success empties its email-and-address window: the owner's typos never add up.
LOGINS_PER_EMAIL_AND_CLIENT = Limit(
    "login-email-client", parse("5 per 15 minutes"), by_email_and_client, cleared_on_success=True
)
# Guesses at one email from many addresses: at least ten of them to reach it.
LOGINS_PER_EMAIL = Limit("login-email", parse("50 per 15 minutes"), by_email)
# One address trying many emails; successes count too, as each costs a password check.
LOGINS_PER_CLIENT = Limit("login-client", parse("60 per 15 minutes"), by_client)
# Each registration hashes a password (scrypt, on purpose slow).
REGISTRATIONS_PER_CLIENT = Limit("register-client", parse("10 per hour"), by_client)

blp = Blueprint("auth", __name__, url_prefix="/api/auth", description="Sign up, in and out")
blp.after_request(not_stored)


def email_taken() -> ApiError:
    """409 for a registration whose email belongs to an account already."""
    return ApiError(409, "conflict", "this email is registered", {"email": ["Taken."]})


@blp.route("/register")
class Register(MethodView):
    """Sign up."""

    @blp.arguments(RegisterSchema)
    @blp.response(201, ProfileSchema)
    @blp.alt_response(409, "CONFLICT")
    @blp.alt_response(429, "TOO_MANY_REQUESTS")
    @limited(REGISTRATIONS_PER_CLIENT)
    def post(self, fields):
        """Create a customer account; the email must be new, whatever its case."""
        with reading() as session:
            taken = find_user_by_email(session, fields["email"]) is not None
        if taken:
            raise email_taken()
        # Hashed with no connection held: scrypt takes longer than the whole insert.
        password_hash = hash_password(fields.pop("password"))
        with transaction() as session:
            user = insert_unless_taken(
                session, User, ["email"], fields | {"password_hash": password_hash}
            )
        if user is None:  # A concurrent registration of this email came first.
            raise email_taken()
        return user


@blp.route("/login")
class Login(MethodView):
    """Sign in."""

    @blp.arguments(LoginSchema)
    @blp.response(200, TokenSchema)
    @blp.alt_response(401, "UNAUTHORIZED")
    @blp.alt_response(429, "TOO_MANY_REQUESTS")
    # The client's own window first: an address over its allowance is refused before it
    # can count against anyone's email, so ten addresses lock out at most a dozen users.
    @limited(LOGINS_PER_CLIENT, LOGINS_PER_EMAIL_AND_CLIENT, LOGINS_PER_EMAIL)
    def post(self, credentials):
        """Exchange an email and password for a bearer token that expires after TOKEN_TTL."""
        with reading() as session:
            user = find_user_by_email(session, credentials["email"])
        # Checked with no connection held: scrypt takes longer than both queries.
        if not password_matches(user, credentials["password"]):
            raise ApiError.unauthorized("the email or password is wrong")
        with transaction() as session:
            issued = issue_token(session, user)
        if issued is None:  # The password changed while this sign-in checked it.
            raise ApiError.unauthorized("the email or password is wrong")
        token, expires_at = issued
        return {"token": token, "expires_at": expires_at}


@blp.route("/logout")
class Logout(MethodView):
    """Sign out."""

    @blp.signed_in
    @blp.response(204)
    def post(self):
        """Revoke the token this request presents."""
        with transaction():
            current_token().revoked_at = utcnow()


@blp.route("/logout-all")
class LogoutAll(MethodView):
    """Sign out everywhere."""

    @blp.signed_in
    @blp.response(204)
    def post(self):
        """Revoke every token of yours, this one too: what a stolen token needs."""
        with transaction() as session:
            revoke_tokens(session, current_user())
