"""A server that refuses writes: a standby at the primary's address, or one made read-only.

After a failover the primary's address may name a standby for a while (the old primary
back as a replica, a DNS name or virtual IP not yet moved), and for a switchover an
operator may make the server refuse writes (default_transaction_read_only). A write then
fails with SQLSTATE 25006, which errors.py answers with 503 database_read_only and
Retry-After. The connection it failed on is dropped, so a later write connects afresh:
- on a standby (libpq reports in_hot_standby, PostgreSQL 14 and later) every connection
  of the pool is dropped, as they all lead to the same address: the first write after the
  address names a primary again succeeds. At most once a second, so that while it still
  names a standby, each refused write does not make every read log in again;
- on a primary in read-only mode only that connection goes: one opened while
  `ALTER DATABASE … SET default_transaction_read_only` held keeps it for its life.
Behind PgBouncer only our connection to it goes; PgBouncer's own server connections are
PgBouncer's to replace (pgbouncer.py keeps the rest of the pool).
"""

import time

from psycopg2 import errors as pg_errors
from sqlalchemy import event
from sqlalchemy.engine import Engine

POOL_DROP_INTERVAL_S = 1.0


class ReadOnlyRefusals:
    """The handle_error listener of one engine, and when it last dropped the whole pool."""

    def __init__(self):
        self.pool_dropped_at = float("-inf")

    def on_error(self, context) -> None:
        """A write refused as read-only drops its connection; on a standby, the pool's."""
        error = context.original_exception
        if not isinstance(error, pg_errors.ReadOnlySqlTransaction):
            return
        context.is_disconnect = True
        now = time.monotonic()
        whole_pool = on_a_standby(error) and now - self.pool_dropped_at >= POOL_DROP_INTERVAL_S
        if whole_pool:
            self.pool_dropped_at = now
        context.invalidate_pool_on_disconnect = whole_pool


def on_a_standby(error: pg_errors.ReadOnlySqlTransaction) -> bool:
    """Whether the connection the error came from is to a server in recovery."""
    cursor = error.cursor
    return cursor is not None and cursor.connection.info.parameter_status("in_hot_standby") == "on"


def install_read_only_handling(engine: Engine) -> None:
    """Have engine drop the connections a read-only server refused a write on.

    Before PgBouncer's listener (pgbouncer.py), which then keeps the rest of the pool.
    """
    event.listen(engine, "handle_error", ReadOnlyRefusals().on_error)
