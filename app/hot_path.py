"""Per-request work this API does not need, kept off the hot path.

Profiling a one-row GET showed each of these costing about as much as the database query
itself (README, "Performance"); none of them changes what a client sees.
"""

import inspect
from functools import partial

from flask import Flask
from flask.globals import request_ctx
from flask.sessions import SecureCookieSessionInterface

from app.extensions import limiter
from app.json_provider import OrjsonProvider

# Where flask-limiter keeps a request's limit state (Limiter.context), made by its checks.
LIMITER_STATE = "_limiter_request_context"


class App(Flask):
    """Flask, writing JSON with orjson and asking once per function whether it is async.

    Flask passes every hook, view and error handler through ensure_sync on every request,
    and each answer takes a walk through inspect; a function's answer never changes.
    """

    json_provider_class = OrjsonProvider

    # The functions seen here are the app's hooks, views and handlers, a few dozen; the cap
    # only bounds an app that would make new ones per request.
    MAX_REMEMBERED = 4096

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.is_async: dict = {}

    def ensure_sync(self, func):
        """func itself when it is a plain function, else wrapped to run to completion."""
        # A method is bound anew on each access; its function is what stays the same.
        key = getattr(func, "__func__", func)
        try:
            is_async = self.is_async.get(key)
        except TypeError:  # An unhashable callable: ask every time, as Flask does.
            return super().ensure_sync(func)
        if is_async is None:
            if len(self.is_async) >= self.MAX_REMEMBERED:
                self.is_async.clear()
            is_async = self.is_async[key] = inspect.iscoroutinefunction(func)
        return self.async_to_sync(func) if is_async else func


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


def skip_idle_rate_limit_hooks(app: Flask) -> None:
    """Run flask-limiter's response hooks only in requests where a limit was checked.

    Its after-request hook (conditional deductions, headers) and its teardown (reset) act
    on the state a limit check leaves on the request context; in any other request they
    build that state only to find it empty, about 8% of a one-row GET's instructions.
    Checked at start-up: if flask-limiter no longer keeps its state where this looks, the
    hooks stay as they are, since skipping a deduction would be unsafe.
    """
    if not limiter_state_is_where_we_look(app):
        return
    for hooks in (app.after_request_funcs, app.teardown_request_funcs):
        hooks[None] = [
            when_a_limit_was_checked(hook) if owned_by_limiter(hook) else hook
            for hook in hooks.get(None, [])
        ]


def limiter_state_is_where_we_look(app: Flask) -> bool:
    """Whether flask-limiter's limit state appears on the request context under our name."""
    with app.test_request_context():
        if holds_limit_state():
            return False
        limiter.context  # noqa: B018 (made on first access)
        return holds_limit_state()


def holds_limit_state() -> bool:
    """Whether flask-limiter left its state on this request's context.

    Looked up in the context's own attributes: hasattr through the proxy would raise and
    catch an AttributeError in nearly every request.
    """
    return LIMITER_STATE in vars(request_ctx._get_current_object())


def owned_by_limiter(hook) -> bool:
    """Whether flask-limiter registered this hook: its bound method or a partial of it."""
    if isinstance(hook, partial):
        return bool(hook.args) and hook.args[0] is limiter
    return getattr(hook, "__self__", None) is limiter


def when_a_limit_was_checked(hook):
    """hook, run only when the request holds limit state; else its argument passes through."""

    def guarded(response_or_error):
        if holds_limit_state():
            return hook(response_or_error)
        return response_or_error

    return guarded


def init_app(app: Flask) -> None:
    """Trim the per-request work; call once every extension is bound."""
    app.session_interface = NoCookieSessions()
    drop_redundant_rate_limit_check(app)
    skip_idle_rate_limit_hooks(app)
