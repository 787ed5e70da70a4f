"""The Blueprint every resource uses: flask-smorest's, with strict query strings and guards."""

import functools

import flask_smorest
from flask import g
from flask_smorest.spec.plugins import integerconverter2paramschema
from webargs.flaskparser import FlaskParser
from werkzeug.routing import IntegerConverter

from app.api.access import BEARER_SCHEME, authenticate
from app.errors import ApiError
from app.schemas.common import MAX_ID


class IdConverter(IntegerConverter):
    """`<id:…>` in a route: a row id, 1 to 2³¹-1, so a larger number is a 404, not a 500.

    Written as ids are written: ASCII digits without leading zeros, so `01` or `١` (which
    int() reads as 1) name no row rather than order 1.
    """

    regex = r"[1-9][0-9]{0,9}"

    def __init__(self, url_map):
        super().__init__(url_map, min=1, max=MAX_ID)


def register_id_converter(app, api) -> None:
    """Let routes say `<id:order_id>`, and document it as a bounded integer."""
    app.url_map.converters["id"] = IdConverter
    api.register_converter(IdConverter, integerconverter2paramschema)


def not_stored(response):
    """Mark a response no cache may keep: it holds a token or a profile, the caller's alone."""
    response.headers["Cache-Control"] = "no-store"
    return response


class SchemaRulesParser(FlaskParser):
    """Lets each schema's Meta.unknown decide everywhere; webargs ignores unknown query keys."""

    DEFAULT_UNKNOWN_BY_LOCATION: dict[str, str | None] = {}  # noqa: RUF012

    def load_json(self, req, schema):
        """The JSON body; nesting too deep or an integer too long for Python is a 400 too.

        webargs turns malformed JSON into a 400; the standard library's parser raises
        RecursionError for deep nesting and ValueError past 4,300 digits.
        """
        try:
            return super().load_json(req, schema)
        except (RecursionError, ValueError):
            raise ApiError.bad_request(
                "Invalid JSON body: nested too deeply or a number too long."
            ) from None


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
