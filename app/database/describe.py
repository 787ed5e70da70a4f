"""A database error in one line, for logs, `flask db-info` and start-up warnings."""

# What a stock PgBouncer answers a client that sends server settings at start-up.
PGBOUNCER_REFUSES_OPTIONS = "unsupported startup parameter: options"


def describe(error: Exception) -> str:
    """The first line of a database error, without SQLAlchemy's background link.

    A PgBouncer refusing our startup options is a configuration error, not an outage:
    the line says which setting fixes it.
    """
    original = getattr(error, "orig", None) or error
    text = str(original).strip()
    line = text.splitlines()[0] if text else type(original).__name__
    if PGBOUNCER_REFUSES_OPTIONS in line:
        line += " (DATABASE_URL points at PgBouncer: set DB_POOLER=pgbouncer)"
    return line


def unreachable(url, error: Exception) -> str:
    """ "cannot reach the database at host:port: <why>", in one line.

    The address is ours to name: under the deadline's wait callback (deadline.py) libpq
    connects asynchronously and its message no longer says where it tried.
    """
    return f"cannot reach the database at {url.host}:{url.port or 5432}: {describe(error)}"
