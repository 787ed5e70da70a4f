"""What each statement carries, added by the cursor: its request's id and count, its limits.

psycopg2 runs every statement of ours through this cursor (engine.py's connect_args), which
sends it with, in the same round trip:
- the request's id in a trailing SQL comment, so the server's pg_stat_activity and its slow
  query log show which request ran it; pg_stat_statements groups by the parsed query, which
  a comment does not change. The id has only [A-Za-z0-9._-] in it, so it can end neither
  the comment nor add a placeholder. The statement is counted as one of the request's;
- the request's deadline: a `SET LOCAL statement_timeout` of what is left, in front, when
  that is below DB_STATEMENT_TIMEOUT (deadline.py). In autocommit the statement and its
  SET LOCAL run as one implicit transaction;
- behind PgBouncer, on a transaction's first statement, the server limits as SET LOCAL
  ahead of the deadline's, which wins (pgbouncer.py).

It is psycopg2's documented cursor_factory rather than before_cursor_execute listeners: an
engine with any statement listener makes SQLAlchemy dispatch every execution event (begin,
execute, cursor execute, commit) on every statement, about 6% of a one-row read's
instructions (README, "Performance").
"""

from psycopg2.extensions import cursor as Psycopg2Cursor
from sqlalchemy import event
from sqlalchemy.engine import Engine

from app import request_context
from app.config import Settings
from app.database.deadline import remaining_s, statement_timeout_prefix
from app.database.pgbouncer import starts_a_transaction, transaction_local_prefix


class StatementCursor(Psycopg2Cursor):
    """psycopg2's cursor, sending each statement with its request's id and limits."""

    statement_timeout_ms = 0  # DB_STATEMENT_TIMEOUT: a deadline further off adds nothing.
    transaction_limits = ""  # Behind PgBouncer: the server limits as SET LOCAL statements.

    def execute(self, query, vars=None):
        """Run query, with its request's id and limits."""
        return super().execute(self.prepared(query), vars)

    def executemany(self, query, vars_list):
        """Run query once per parameter set (one statement of the request)."""
        return super().executemany(self.prepared(query), vars_list)

    def prepared(self, statement):
        """statement as it is sent: limits in front, the request's id behind."""
        if not isinstance(statement, str):  # A psycopg2.sql object, composed by a tool.
            return statement
        prefix = statement_timeout_prefix(remaining_s(), self.statement_timeout_ms)
        if self.transaction_limits and starts_a_transaction(self.connection):
            prefix = self.transaction_limits + prefix
        return prefix + tagged(statement)


def statement_cursor(settings: Settings, behind_pgbouncer: bool) -> type[StatementCursor]:
    """The cursor class for connections with settings' limits, through PgBouncer or not."""
    limits = transaction_local_prefix(settings) if behind_pgbouncer else ""
    attributes = {
        "statement_timeout_ms": settings.db_statement_timeout,
        "transaction_limits": limits,
    }
    return type(StatementCursor.__name__, (StatementCursor,), attributes)


def tagged(statement: str) -> str:
    """statement with the current request's id appended, counted as one of its queries."""
    context = request_context.current()
    if context is None:
        return statement
    context.queries += 1
    return f"{statement} /* request_id={context.request_id} */"


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
