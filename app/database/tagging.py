"""Each statement a request runs is counted, and tagged with the request's id, by the cursor.

The id rides in a trailing SQL comment, so the server's pg_stat_activity and its slow query
log show which request ran a statement, at no extra round trip; statistics such as
pg_stat_statements group by the parsed query, which a comment does not change. The id has
only [A-Za-z0-9._-] in it, so it can end neither the comment nor add a placeholder.

It is psycopg2's documented cursor_factory rather than a before_cursor_execute listener: an
engine with any statement listener makes SQLAlchemy dispatch every execution event (begin,
execute, cursor execute, rollback) on every statement, which cost a one-row read 150k
instructions, more than a third of the read (README, "Performance").
"""

from psycopg2.extensions import cursor as Psycopg2Cursor
from sqlalchemy import event
from sqlalchemy.engine import Engine

from app import request_context


def tagged(statement):
    """statement with the current request's id appended, counted as one of its queries."""
    context = request_context.current()
    if context is None or not isinstance(statement, str):
        return statement
    context.queries += 1
    return f"{statement} /* request_id={context.request_id} */"


class RequestTaggingCursor(Psycopg2Cursor):
    """psycopg2's cursor, counting and tagging the statements of the request being served."""

    def execute(self, query, vars=None):
        """Run query, tagged."""
        return super().execute(tagged(query), vars)

    def executemany(self, query, vars_list):
        """Run query once per parameter set, tagged (one statement of the request)."""
        return super().executemany(tagged(query), vars_list)


def count_statements(engine: Engine) -> None:
    """Count each request's statements on an engine whose driver has no cursor_factory (SQLite).

    A statement listener costs every execution there too, but SQLite is the development
    database, where seeing a view's query count matters more than its instructions.
    """
    event.listen(engine, "before_cursor_execute", count_statement)


def count_statement(conn, cursor, statement, parameters, context, executemany) -> None:
    """Count one statement of the request being served, if any."""
    request = request_context.current()
    if request is not None:
        request.queries += 1
