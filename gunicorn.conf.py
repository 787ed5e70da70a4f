"""gunicorn settings from the environment, the connection budget guard, and pool hooks.

Run: gunicorn -c gunicorn.conf.py
"""

import sys

from app.config import load_settings
from app.database import dispose_engines
from app.database.budget import check_budget, fetch_server_limits
from app.database.health import HealthProbe

# A bad variable stops the master here with one line, before any worker boots.
settings = load_settings()

wsgi_app = "wsgi:app"
bind = f"0.0.0.0:{settings['PORT']}"
workers = settings["WEB_CONCURRENCY"]
threads = settings["GUNICORN_THREADS"]
worker_class = "gthread" if threads > 1 else "sync"
# A worker stuck past the pool, statement and connect timeouts is killed and replaced.
timeout = 60
graceful_timeout = 30
keepalive = 5
accesslog = "-"
errorlog = "-"
loglevel = "info"
# gunicorn's control socket defaults to one path per user; several servers would collide.
control_socket_disable = True


def on_starting(server):
    """Refuse a deployment whose worst case exceeds the budget or the server."""
    probe = HealthProbe(settings)
    limits, limits_error = fetch_server_limits(probe.engine)
    verdict = check_budget(settings, limits, limits_error)
    for warning in verdict.warnings:
        server.log.warning("connection budget: %s", warning)
    for error in verdict.errors:
        server.log.error("connection budget: %s", error)
    if verdict.errors:
        sys.exit("refusing to start: the connection budget does not hold (see above)")
    server.log.info("connection budget: %s, within limits", verdict.arithmetic)


def post_fork(server, worker):
    """Forget connections inherited from the master (preload_app) without closing them."""
    if server.app.callable is not None:
        dispose_engines(server.app.callable, close=False)


def worker_exit(server, worker):
    """Close this worker's connections, so a stopped worker leaves none on the server."""
    app = getattr(worker, "wsgi", None)
    if app is not None:
        dispose_engines(app, close=True)
