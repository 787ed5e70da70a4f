"""Pre-ping with a bypass window: test a connection on checkout unless it just proved alive.

SQLAlchemy's pool_pre_ping costs a round trip on every checkout, a third of a fast read's
database time. Like HikariCP's 500 ms aliveness bypass, a connection that was checked in
alive within the window skips the ping, provided its socket is quiet: an idle connection
is sent nothing unless the server is saying goodbye (a terminated backend or a restart
sends a FATAL message and closes; a crash closes), and one poll(2) with no wait sees that.
Everything else is pinged, and a failed ping invalidates the pool's older connections as
pool_pre_ping does, so a restarted server heals without failing a request.

What the bypass cannot see is a server that vanished without a word (a cut network) in
the last half second; TCP keepalives and the connect timeout cover that case. After any
invalidation in the pool (a failed ping, or a request that lost its connection), every
connection checked in before it is pinged again, whatever its age.
"""

import select
import time

from sqlalchemy import event, exc
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

# HikariCP's aliveness bypass window.
BYPASS_WINDOW_S = 0.5
CHECKED_IN_AT = "pre_ping_checked_in_at"


class PrePing:
    """The pool listeners of one engine, and when its pool last saw a connection fail.

    ping_server=False (behind PgBouncer): a SELECT 1 would wait for, and take, a server
    connection on every checkout; there the socket check alone decides, and a connection
    PgBouncer closed (a restart) is replaced on its own, the others kept.
    """

    def __init__(self, dialect: Dialect, window_s: float, ping_server: bool = True):
        self.dialect = dialect
        self.window_s = window_s
        self.ping_server = ping_server
        self.last_invalidated_at = 0.0

    def on_connect(self, dbapi_connection, record: ConnectionPoolEntry) -> None:
        """A connection that was just opened needs no ping, as with pool_pre_ping."""
        record.info[CHECKED_IN_AT] = time.monotonic()

    def on_checkin(self, dbapi_connection, record: ConnectionPoolEntry) -> None:
        """Note when a connection came back alive (None: it was invalidated instead)."""
        if dbapi_connection is not None:
            record.info[CHECKED_IN_AT] = time.monotonic()

    def on_invalidate(self, dbapi_connection, record: ConnectionPoolEntry, exception) -> None:
        """End the bypass for every connection checked in before this failure."""
        self.last_invalidated_at = time.monotonic()

    def on_checkout(
        self, dbapi_connection, record: ConnectionPoolEntry, proxy: PoolProxiedConnection
    ) -> None:
        """Ping unless the connection was checked in alive within the window."""
        if self.recently_alive(dbapi_connection, record):
            return
        if not self.ping_server:
            if not socket_is_quiet(dbapi_connection):
                raise exc.DisconnectionError("PgBouncer closed this connection")
            return
        self.ping(dbapi_connection)

    def recently_alive(self, dbapi_connection, record: ConnectionPoolEntry) -> bool:
        """Checked in within the window, since the pool last saw a failure, and quiet since."""
        checked_in_at = record.info.get(CHECKED_IN_AT)
        if checked_in_at is None or checked_in_at <= self.last_invalidated_at:
            return False
        if time.monotonic() - checked_in_at >= self.window_s:
            return False
        return socket_is_quiet(dbapi_connection)

    def ping(self, dbapi_connection) -> None:
        """SELECT 1; on a disconnect, have the pool replace this and every older connection."""
        try:
            self.dialect.do_ping(dbapi_connection)
        except self.dialect.loaded_dbapi.Error as error:
            if self.dialect.is_disconnect(error, dbapi_connection, None):
                raise exc.InvalidatePoolError() from error
            raise


def socket_is_quiet(dbapi_connection) -> bool:
    """Whether nothing waits to be read on the connection's socket (no goodbye, no EOF).

    False as well when the driver has no socket to look at (SQLite), so it is pinged.
    """
    try:
        if dbapi_connection.closed:
            return False
        poller = select.poll()
        poller.register(dbapi_connection.fileno(), select.POLLIN)
        return not poller.poll(0)
    except (AttributeError, OSError, ValueError):
        return False


def install_pre_ping(
    engine: Engine, window_s: float = BYPASS_WINDOW_S, ping_server: bool = True
) -> PrePing:
    """Ping engine's connections on checkout, bypassing those used within window_s.

    Use it instead of the engine's pool_pre_ping, not with it.
    """
    pre_ping = PrePing(engine.dialect, window_s, ping_server)
    event.listen(engine, "connect", pre_ping.on_connect)
    event.listen(engine, "checkin", pre_ping.on_checkin)
    event.listen(engine, "checkout", pre_ping.on_checkout)
    event.listen(engine, "invalidate", pre_ping.on_invalidate)
    event.listen(engine, "soft_invalidate", pre_ping.on_invalidate)
    return pre_ping
