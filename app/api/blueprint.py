"""The Blueprint every resource uses: flask-smorest's, with strict query strings."""

import flask_smorest
from webargs.flaskparser import FlaskParser


class SchemaRulesParser(FlaskParser):
    """Lets each schema's Meta.unknown decide everywhere; webargs ignores unknown query keys."""

    DEFAULT_UNKNOWN_BY_LOCATION: dict[str, str | None] = {}  # noqa: RUF012


class Blueprint(flask_smorest.Blueprint):
    """A flask-smorest Blueprint whose arguments reject unknown fields (schemas say RAISE)."""

    ARGUMENTS_PARSER = SchemaRulesParser()
