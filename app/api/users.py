"""The signed-in user's own profile."""

from typing import Any

from flask.views import MethodView
from limits import parse

from app.api.access import current_token, current_user
from app.api.blueprint import Blueprint, not_stored
from app.database import transaction
from app.errors import ApiError
from app.models import User
from app.rate_limits import Limit, limited
from app.schemas.user import ProfileSchema, ProfileUpdateSchema
from app.security import hash_password, password_matches, revoke_tokens

blp = Blueprint("users", __name__, url_prefix="/api/user", description="Your profile")
blp.after_request(not_stored)


def by_token_changing_password(changes: dict[str, Any]) -> tuple[str, ...] | None:
    """Key: the caller's token, when the changes check their current password."""
    return (str(current_token().id),) if "current_password" in changes else None


# Guesses at the current password, per token: a stolen token's guesses lock out only that
# token, never its owner's own change (a token is won only with the password, so a thief
# cannot mint more). A success empties the window.
PASSWORD_CHANGES_PER_TOKEN = Limit(
    "password-change-token",
    parse("5 per 15 minutes"),
    by_token_changing_password,
    cleared_on_success=True,
)


@blp.route("/profile")
class Profile(MethodView):
    """The caller's profile."""

    @blp.signed_in
    @blp.response(200, ProfileSchema)
    def get(self):
        """Get your profile."""
        return current_user()

    @blp.signed_in
    @blp.arguments(ProfileUpdateSchema)
    @blp.response(200, ProfileSchema)
    @blp.alt_response(429, "TOO_MANY_REQUESTS")
    @limited(PASSWORD_CHANGES_PER_TOKEN)
    def patch(self, changes):
        """Change your name or phone, or your password given the current one."""
        user = current_user()
        new_hash = None
        if "new_password" in changes:
            new_hash = new_password_hash(
                user, changes.pop("current_password"), changes.pop("new_password")
            )
        with transaction() as session:
            if new_hash is not None:
                user.password_hash = new_hash
                session.flush()  # The password first: a racing sign-in then sees it changed.
                revoke_tokens(session, user, keep=current_token())
            apply_profile_changes(user, changes)
        return user


def new_password_hash(user: User, current_password: str, new_password: str) -> str:
    """The new password's hash, once the current one checks out (422 when it is wrong).

    Both hashes are computed before the transaction: scrypt holds no connection.
    """
    if not password_matches(user, current_password):
        raise ApiError.validation({"current_password": ["Is not correct."]})
    return hash_password(new_password)


def apply_profile_changes(user: User, changes: dict[str, Any]) -> None:
    """Set name and phone."""
    for name, value in changes.items():
        setattr(user, name, value)
