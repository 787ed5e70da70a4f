"""Per-request work this API does not need, kept off the hot path.

Profiling a one-row GET showed each of these costing about as much as the database query
itself (README, "Performance"); none of them changes what a client sees.
"""

import inspect

from flask import Flask
from flask.sessions import SecureCookieSessionInterface

from app.json_provider import OrjsonProvider


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


def init_app(app: Flask) -> None:
    """Trim the per-request work; call once every extension is bound."""
    app.session_interface = NoCookieSessions()
