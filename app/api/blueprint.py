"""The Blueprint every resource uses: flask-smorest's, with strict query strings and guards."""

import functools

import flask_smorest
from flask import g
from webargs.flaskparser import FlaskParser

from app.api.access import BEARER_SCHEME, authenticate
from app.errors import ApiError


class SchemaRulesParser(FlaskParser):
    """Lets each schema's Meta.unknown decide everywhere; webargs ignores unknown query keys."""

    DEFAULT_UNKNOWN_BY_LOCATION: dict[str, str | None] = {}  # noqa: RUF012


class Blueprint(flask_smorest.Blueprint):
    """A flask-smorest Blueprint whose arguments reject unknown fields (schemas say RAISE),
    and whose views can demand a signed-in caller or an admin."""

    ARGUMENTS_PARSER = SchemaRulesParser()

    def signed_in(self, view):
        """Run view only for a caller with a live bearer token (401 otherwise)."""
        return self.guarded(view, admin=False)

    def admin_only(self, view):
        """Run view only for a signed-in admin (401, or 403 for a customer)."""
        return self.guarded(view, admin=True)

    def guarded(self, view, admin: bool):
        """Check the caller before anything else runs, and document the bearer scheme.

        Place the decorator outermost, so a caller without a token gets 401 before the
        body is even parsed.
        """

        @functools.wraps(view)
        def guard(*args, **kwargs):
            g.api_token = authenticate()
            if admin and not g.api_token.user.is_admin:
                raise ApiError.forbidden("only an admin may do this")
            return view(*args, **kwargs)

        documented = self.doc(security=[{BEARER_SCHEME: []}])(guard)
        documented = self.alt_response(401, "UNAUTHORIZED")(documented)
        return self.alt_response(403, "FORBIDDEN")(documented) if admin else documented
