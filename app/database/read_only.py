"""A server that refuses writes: a standby at the primary's address, or one made read-only.

After a failover the primary's address may name a standby for a while (the old primary
back as a replica, a DNS name or virtual IP not yet moved), and for a switchover an
operator may make the server refuse writes (default_transaction_read_only). A write then
fails with SQLSTATE 25006, which errors.py answers with 503 database_read_only and
Retry-After. The connection it failed on is dropped, so a later write connects afresh:
- on a standby (libpq reports in_hot_standby, PostgreSQL 14 and later) every connection
  of the pool is dropped, as they all lead to the same address: the first write after the
  address names a primary again succeeds;
- on a primary in read-only mode only that connection goes: one opened while
  `ALTER DATABASE … SET default_transaction_read_only` held keeps it for its life.
Behind PgBouncer its server connections are its own to replace; ours to it stay.
"""

from psycopg2 import errors as pg_errors
from sqlalchemy import event
from sqlalchemy.engine import Engine


def drop_read_only_connections(context) -> None:
    """handle_error: a write refused as read-only drops its connection, on a standby the pool's."""
    error = context.original_exception
    if isinstance(error, pg_errors.ReadOnlySqlTransaction):
        context.is_disconnect = True
        context.invalidate_pool_on_disconnect = on_a_standby(error)


def on_a_standby(error: pg_errors.ReadOnlySqlTransaction) -> bool:
    """Whether the connection the error came from is to a server in recovery."""
    cursor = error.cursor
    return cursor is not None and cursor.connection.info.parameter_status("in_hot_standby") == "on"


def install_read_only_handling(engine: Engine) -> None:
    """Have engine drop the connections a read-only server refused a write on."""
    event.listen(engine, "handle_error", drop_read_only_connections)
