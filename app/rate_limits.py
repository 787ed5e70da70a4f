"""Rate limits on sign-in, sign-up and password changes, counted before the work they guard.

Each attempt takes its place in every window that applies with one atomic `hit()` of the
`limits` library's moving-window strategy, before the password is checked or hashed: as
many requests as arrive at once, at most the allowance gets through. A limit may be given
back when the attempt succeeds (`clear()`), so a user who knows their password is never
held back by their own typos. README ("Rate limits") states the policy and its reasons.
"""

import functools
import hashlib
import ipaddress
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Flask, current_app, request
from limits import RateLimitItem
from limits.errors import StorageError
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from app.config import Settings, app_settings
from app.errors import ApiError

log = logging.getLogger(__name__)

EXTENSION = "rate_limits"
# After the shared storage fails, count in this process for this long before trying it again.
STORAGE_RETRY_S = 5
# The limits storage that lives in one process: each gunicorn worker has its own.
PER_PROCESS_STORAGE = "memory://"
Result = TypeVar("Result")


@dataclass(frozen=True)
class Limit:
    """An allowance ("5 per 15 minutes") for each key that `keys` finds in an attempt.

    `keys` gets the view's parsed body and returns the parts of the key, or None when the
    limit does not apply to this attempt.
    """

    name: str
    allowance: RateLimitItem
    keys: Callable[[dict[str, Any]], tuple[str, ...] | None]
    cleared_on_success: bool = False


class AttemptCounter:
    """Moving windows in RATELIMIT_STORAGE_URI, or in this process while that storage fails."""

    def __init__(self, storage_uri: str, key_prefix: str):
        shared_storage = storage_from_string(storage_uri, wrap_exceptions=True)
        self.shared = MovingWindowRateLimiter(shared_storage)
        self.local = MovingWindowRateLimiter(MemoryStorage())
        self.key_prefix = key_prefix
        self.shared_failed_at = -math.inf

    def hit(self, rule: Limit, key: tuple[str, ...]) -> bool:
        """Take a place in the window of this key; False when it is full."""
        return self.run(lambda strategy: strategy.hit(rule.allowance, *self.window(rule, key)))

    def clear(self, rule: Limit, key: tuple[str, ...]) -> None:
        """Empty the window of this key."""
        self.run(lambda strategy: strategy.clear(rule.allowance, *self.window(rule, key)))

    def seconds_until_free(self, rule: Limit, key: tuple[str, ...]) -> int:
        """Whole seconds until the window of this key has a free place again (at least 1)."""
        stats = self.run(
            lambda strategy: strategy.get_window_stats(rule.allowance, *self.window(rule, key))
        )
        return max(1, math.ceil(stats.reset_time - time.time()))

    def window(self, rule: Limit, key: tuple[str, ...]) -> tuple[str, ...]:
        """The identifiers of one key's window: deployment, rule, key."""
        return (self.key_prefix, rule.name, *key)

    def run(self, operation: Callable[[MovingWindowRateLimiter], Result]) -> Result:
        """operation on the shared storage, or on this process's while the shared one fails.

        Counting per process when Redis is down still limits each worker, where failing
        every sign-in would lock everyone out.
        """
        if time.monotonic() - self.shared_failed_at >= STORAGE_RETRY_S:
            try:
                return operation(self.shared)
            except StorageError as error:
                log.warning(
                    "rate-limit storage failed (%s); counting in this process for %d s",
                    type(error.storage_error).__name__,
                    STORAGE_RETRY_S,
                )
                self.shared_failed_at = time.monotonic()
        return operation(self.local)


def counter_of(app: Flask) -> AttemptCounter:
    """The app's attempt counter."""
    return app.extensions[EXTENSION]


def client_address() -> str:
    """The caller's address; for IPv6, its /64, which one subscriber usually holds whole."""
    address = request.remote_addr or "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6 and ip.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def by_client(body: dict[str, Any]) -> tuple[str, ...]:
    """Key: the client's address."""
    return (client_address(),)


def email_digest(email: str) -> str:
    """The SHA-256 of an email: storage holds no address (a guessed one still matches)."""
    return hashlib.sha256(email.encode()).hexdigest()


def by_email(body: dict[str, Any]) -> tuple[str, ...]:
    """Key: the email the body names (normalised by its schema), hashed."""
    return (email_digest(body["email"]),)


def by_email_and_client(body: dict[str, Any]) -> tuple[str, ...]:
    """Key: the email the body names, hashed, from this client's address."""
    return (email_digest(body["email"]), client_address())


def too_many_requests(retry_after_s: int) -> ApiError:
    """429 with the seconds until the next attempt may be made."""
    return ApiError(
        429,
        "too_many_requests",
        "too many attempts; try again later",
        headers={"Retry-After": str(retry_after_s)},
    )


def limited(*rules: Limit):
    """Count each call of a MethodView method taking a parsed body against rules, first.

    The first full window answers 429 (later rules are not counted then). When the view
    returns, the windows of rules cleared_on_success are emptied; when it raises (a wrong
    password, say), the attempt stays counted.
    """

    def decorate(view):
        @functools.wraps(view)
        def counted(self, body: dict[str, Any], *args, **kwargs):
            attempts = counter_of(current_app)
            keyed = [(rule, key) for rule in rules if (key := rule.keys(body)) is not None]
            for rule, key in keyed:
                if not attempts.hit(rule, key):
                    raise too_many_requests(attempts.seconds_until_free(rule, key))
            result = view(self, body, *args, **kwargs)
            for rule, key in keyed:
                if rule.cleared_on_success:
                    attempts.clear(rule, key)
            return result

        return counted

    return decorate


def per_worker_warning(settings: Settings, login_limit: Limit) -> str | None:
    """What start-up says when each worker counts alone, multiplying every limit."""
    workers, allowed = settings.web_concurrency, login_limit.allowance.amount
    if workers == 1 or not settings.ratelimit_storage_uri.startswith(PER_PROCESS_STORAGE):
        return None
    return (
        f"RATELIMIT_STORAGE_URI is {settings.ratelimit_storage_uri}, so each of the"
        f" {workers} workers counts alone and every limit is {workers} times looser"
        f" ({workers} × {allowed} = {workers * allowed} wrong passwords for one account"
        f" from one address before a 429, not {allowed}); set"
        " RATELIMIT_STORAGE_URI=redis://… to share the counts"
    )


def init_app(app: Flask) -> None:
    """Give the app its attempt counter, on RATELIMIT_STORAGE_URI."""
    settings = app_settings(app)
    app.extensions[EXTENSION] = AttemptCounter(
        settings.ratelimit_storage_uri, settings.ratelimit_key_prefix
    )
