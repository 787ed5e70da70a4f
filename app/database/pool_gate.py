"""The wait for a pooled connection, bounded by the request's deadline, and shed early.

QueuePool waits up to its one pool_timeout for every checkout. The gate in front of it
holds one permit per connection the pool may open (pool_size + max_overflow): a checkout
takes a permit first, waiting at most the smaller of DB_POOL_TIMEOUT and what is left of
its deadline, so the pool itself never makes it wait. When no permit is free and the
queue ahead and the request's own use would outlast its deadline (waiters ahead × the
recent mean hold time ÷ permits, plus one mean hold), the checkout is refused at once
instead of failing late.
"""

import threading
import time

from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from app.database.deadline import DeadlineExceeded

# Where a checked-out connection's pool entry keeps its permit and when it was taken.
PERMIT = "gate_permit"
# Weight of the newest hold time in the running mean.
HOLD_WEIGHT = 0.2
# A waiter must have this many mean holds left when it starts: holds vary, a mean is a mean.
HEADROOM = 1.5


class WouldWaitPastDeadline(sa_exc.TimeoutError):
    """The queue for a connection is longer than the request's deadline allows."""


class CheckoutGate:
    """Permits for a pool's connections, with the waiters and hold times that shed by."""

    def __init__(self, permits: int):
        self.permits = permits
        self.free = threading.Semaphore(permits)
        self.lock = threading.Lock()
        self.waiting = 0
        self.mean_hold_s = 0.0

    def enter(self, pool_timeout_s: float, remaining_s: float | None) -> None:
        """Take a permit within pool_timeout_s and in time to finish, or raise a TimeoutError.

        A waiter needs HEADROOM mean holds after it gets a connection, so it waits at most
        until remaining_s minus those: a connection taken later would serve a statement the
        deadline cancels, time the pool could have given a request that finishes.
        """
        if remaining_s is not None and remaining_s <= 0:
            raise DeadlineExceeded("the request's deadline passed before it asked for a connection")
        if self.free.acquire(blocking=False):
            return
        start_by_s = None if remaining_s is None else remaining_s - HEADROOM * self.mean_hold_s
        if start_by_s is not None and self.expected_wait_s() >= start_by_s:
            raise WouldWaitPastDeadline("the queue for a connection outlasts the deadline")
        self.wait(pool_timeout_s, start_by_s)

    def wait(self, pool_timeout_s: float, start_by_s: float | None) -> None:
        """Queue for a permit until the pool timeout, or until it is too late to start."""
        too_late_first = start_by_s is not None and start_by_s < pool_timeout_s
        with self.lock:
            self.waiting += 1
        try:
            got = self.free.acquire(timeout=start_by_s if too_late_first else pool_timeout_s)
        finally:
            with self.lock:
                self.waiting -= 1
        if got:
            return
        if too_late_first:
            raise WouldWaitPastDeadline("no connection came free in time to finish by the deadline")
        raise sa_exc.TimeoutError(f"no connection came free within {pool_timeout_s:g} s")

    def expected_wait_s(self) -> float:
        """How long a new waiter would queue: those ahead of it, served permits at a time."""
        return (self.waiting + 1) * self.mean_hold_s / self.permits

    def leave(self) -> None:
        """Give a permit back that no connection took (its checkout failed)."""
        self.free.release()

    def hand_to(self, connection: PoolProxiedConnection) -> None:
        """Tie the permit to the checked-out connection's entry, to return at checkin."""
        self.give_back(connection)  # Only a permit whose checkin was missed is still there.
        connection.record_info[PERMIT] = (self, time.monotonic())

    @staticmethod
    def give_back(entry: ConnectionPoolEntry | PoolProxiedConnection) -> None:
        """Return the entry's permit, if it holds one, noting how long it was held."""
        permit = entry.record_info.pop(PERMIT, None)
        if permit is None:
            return
        gate, taken_at = permit
        held_s = time.monotonic() - taken_at
        with gate.lock:
            weight = HOLD_WEIGHT if gate.mean_hold_s else 1.0  # The first hold is the mean.
            gate.mean_hold_s += weight * (held_s - gate.mean_hold_s)
        gate.free.release()


def return_permit(dbapi_connection, record: ConnectionPoolEntry) -> None:
    """At checkin or detach: the connection's permit goes back to its gate."""
    if record is not None:
        CheckoutGate.give_back(record)


def install_gate_returns(engine: Engine) -> None:
    """Return permits of engine's connections (and of the pools a dispose makes later)."""
    event.listen(engine, "checkin", return_permit)
    event.listen(engine, "detach", return_permit)
