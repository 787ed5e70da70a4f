"""Per-request work this API does not need, kept off the hot path.

Profiling a one-row GET showed each of these costing about as much as the database query
itself (README, "Performance"); none of them changes what a client sees.
"""

from flask import Flask
from flask.sessions import SecureCookieSessionInterface

from app.extensions import limiter


class NoCookieSessions(SecureCookieSessionInterface):
    """Bearer tokens, not cookies, say who is calling: no request opens or saves a session.

    Flask otherwise builds a signing serializer on every request to look for a cookie.
    """

    def open_session(self, app, request):
        """A null session: reading it finds nothing, writing to it raises."""
        return self.make_null_session(app)

    def save_session(self, app, session, response) -> None:
        """Nothing to save."""


def has_app_wide_rate_limits() -> bool:
    """Whether any limit applies beyond the views that are decorated with one.

    When the blueprint limits cannot be read, assume there are some: checking too much is
    safe, skipping a limit is not.
    """
    manager = limiter.limit_manager
    blueprint_limits = getattr(manager, "_blueprint_limits", None)
    return bool(
        manager.application_limits
        or manager.default_limits
        or blueprint_limits is None
        or blueprint_limits
    )


def drop_redundant_rate_limit_check(app: Flask) -> None:
    """Remove flask-limiter's before-request check when only decorated views have limits.

    A decorated view checks its own limits (and skips them in that hook); the hook then
    only resolves an empty list of limits, on every request. Its after-request hook stays:
    it counts the failed logins (deduct_when) and sets the rate-limit headers.
    """
    if has_app_wide_rate_limits():
        return
    hooks = app.before_request_funcs.get(None, [])
    app.before_request_funcs[None] = [
        hook for hook in hooks if hook != limiter._check_request_limit
    ]


def init_app(app: Flask) -> None:
    """Trim the per-request work; call once every extension is bound."""
    app.session_interface = NoCookieSessions()
    drop_redundant_rate_limit_check(app)
