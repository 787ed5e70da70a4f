"""Register, sign in and sign out."""

from flask import request
from flask.views import MethodView
from flask_limiter.util import get_remote_address

from app.api.access import current_token
from app.api.blueprint import Blueprint
from app.database import reading, transaction
from app.errors import ApiError
from app.extensions import limiter
from app.models import User
from app.models.base import utcnow
from app.schemas.user import LoginSchema, ProfileSchema, RegisterSchema, TokenSchema
from app.security import find_user_by_email, hash_password, issue_token, password_matches

# Failed sign-ins allowed per window, for one email and for one client address.
FAILED_LOGINS_PER_EMAIL = "5 per 15 minutes"
FAILED_LOGINS_PER_CLIENT = "30 per 15 minutes"

blp = Blueprint("auth", __name__, url_prefix="/api/auth", description="Sign up, in and out")


def login_failed(response) -> bool:
    """Only failed sign-ins count against the limits."""
    return response.status_code == 401


def email_tried() -> str:
    """The rate-limit key of the email a sign-in names (its client address when it names none)."""
    body = request.get_json(silent=True)
    email = body.get("email") if isinstance(body, dict) else None
    if isinstance(email, str) and email.strip():
        return "email:" + email.strip().lower()
    return "client:" + get_remote_address()


@blp.route("/register")
class Register(MethodView):
    """Sign up."""

    @blp.arguments(RegisterSchema)
    @blp.response(201, ProfileSchema)
    @blp.alt_response(409, "CONFLICT")
    def post(self, fields):
        """Create a customer account; the email must be new, whatever its case."""
        with reading() as session:
            taken = find_user_by_email(session, fields["email"]) is not None
        if taken:
            raise ApiError(409, "conflict", "this email is registered", {"email": ["Taken."]})
        # Hashed with no connection held: scrypt takes longer than the whole insert.
        password_hash = hash_password(fields.pop("password"))
        user = User(**fields, password_hash=password_hash)
        with transaction() as session:
            session.add(user)
        return user


@blp.route("/login")
class Login(MethodView):
    """Sign in."""

    @limiter.limit(FAILED_LOGINS_PER_CLIENT, key_func=get_remote_address, deduct_when=login_failed)
    @limiter.limit(FAILED_LOGINS_PER_EMAIL, key_func=email_tried, deduct_when=login_failed)
    @blp.arguments(LoginSchema)
    @blp.response(200, TokenSchema)
    @blp.alt_response(401, "UNAUTHORIZED")
    @blp.alt_response(429, "TOO_MANY_REQUESTS")
    def post(self, credentials):
        """Exchange an email and password for a bearer token that expires after TOKEN_TTL."""
        with reading() as session:
            user = find_user_by_email(session, credentials["email"])
        # Checked with no connection held: scrypt takes longer than both queries.
        if not password_matches(user, credentials["password"]):
            raise ApiError.unauthorized("the email or password is wrong")
        with transaction() as session:
            token, expires_at = issue_token(session, user)
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
