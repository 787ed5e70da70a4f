"""gunicorn settings from the environment, the connection budget guard, and pool hooks.

Run: gunicorn -c gunicorn.conf.py
"""

import os
import shutil
import sys
import tempfile
from dataclasses import replace

# The only work done here before the imports, and why no hook can do it: prometheus_client
# picks where samples go when it is first imported (the imports below import it), and under
# preload_app the master loads the app, which may write samples, before on_starting runs.
# Workers inherit both: their samples go to files /metrics adds up, their lines are JSON
# unless LOG_FORMAT says text.
made_metrics_folder = "PROMETHEUS_MULTIPROC_DIR" not in os.environ
if made_metrics_folder:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="prometheus-")
os.environ.setdefault("LOG_FORMAT", "json")

from prometheus_client import multiprocess

from app.api.auth import LOGINS_PER_EMAIL_AND_CLIENT
from app.config import in_development, load_settings
from app.database import dispose_engines
from app.database.budget import assess_budget
from app.database.health import HealthProbe
from app.database.pool_metrics import start_pool_metrics
from app.database.timeout_hierarchy import deadline_errors, deadline_warnings
from app.database.timeouts import settings_warnings
from app.metrics import serve_metrics
from app.rate_limits import per_worker_warning
from app.request_log import ACCESS_LOG_FORMAT, gunicorn_logconfig
from deploy.ports import address_taken

# A bad variable stops the master here with one line, before any worker boots.
settings = load_settings()

wsgi_app = "wsgi:app"
# With proxies trusted, whoever reaches this port may claim any client address: loopback
# only, unless a --bind says otherwise (README, "Running in production").
bind = f"{'127.0.0.1' if settings.trusted_proxy_hops else '0.0.0.0'}:{settings.port}"
workers = settings.web_concurrency
threads = settings.gunicorn_threads
worker_class = "gthread" if threads > 1 else "sync"
# A worker stuck past the pool, statement and connect timeouts is killed and replaced.
timeout = 60
graceful_timeout = 30
keepalive = 5
accesslog = "-"
errorlog = "-"
loglevel = "info"
# Behind a proxy its bound on the header block applies first (deploy/nginx.conf passes at most
# about 1,000 of the shortest header lines); gunicorn's default of 100 would refuse more, in HTML.
if settings.trusted_proxy_hops:
    limit_request_fields = 1100
# gunicorn's lines, its access log and the app's, all in LOG_FORMAT (app/request_log.py).
logconfig_dict = gunicorn_logconfig(settings.log_format)
access_log_format = ACCESS_LOG_FORMAT
# gunicorn's control socket defaults to one path per user; several servers would collide.
control_socket_disable = True


def on_starting(server):
    """Refuse taken ports and a deployment over budget; warn of limits looser than they say.

    Before gunicorn binds: a taken port is named once, not retried five times.
    """
    clear_metrics()
    refuse_taken_addresses(server)
    probe = HealthProbe(settings)
    verdict, _, _ = assess_budget(settings, probe.server_engine)
    for warning in verdict.warnings:
        server.log.warning("connection budget: %s", warning)
    for error in verdict.errors:
        server.log.error("connection budget: %s", error)
    if verdict.errors:
        sys.exit("refusing to start: the connection budget does not hold (see above)")
    server.log.info("connection budget: %s, within limits", verdict.arithmetic)
    for warning in settings_warnings(probe.engine, settings):
        server.log.warning("server settings: %s", warning)
    warn_if_limits_are_per_worker(server)
    serve_metrics_or_refuse(server)
    check_timeouts(server)


def check_timeouts(server):
    """Refuse a deadline gunicorn would kill first; warn of layers that outlast it."""
    for warning in deadline_warnings(settings, server.cfg.graceful_timeout):
        server.log.warning("timeouts: %s", warning)
    errors = deadline_errors(settings, server.cfg.timeout)
    for error in errors:
        server.log.error("timeouts: %s", error)
    if errors:
        sys.exit("refusing to start: the timeouts do not nest (see above)")


def nworkers_changed(server, new_value, old_value):
    """Refuse more workers (TTIN) than the connection budget holds; fewer are always fine."""
    if old_value is None or new_value <= old_value:
        return
    grown = replace(settings, web_concurrency=new_value)
    verdict, _, _ = assess_budget(grown, HealthProbe(grown).server_engine)
    if not verdict.errors:
        server.log.info("connection budget: %s, within limits", verdict.arithmetic)
        return
    for error in verdict.errors:
        server.log.error("connection budget: %d workers refused: %s", new_value, error)
    server.num_workers = old_value  # Calls this hook again, with fewer: nothing to check.


def refuse_taken_addresses(server):
    """Stop with one line when an address gunicorn is to listen on is taken."""
    # Sockets handed over by a re-exec (USR2) or systemd are ours, and in use by design.
    if server.cfg.reuse_port or "GUNICORN_FD" in os.environ or "LISTEN_FDS" in os.environ:
        return
    for host, port in tcp_addresses(server.cfg.bind):
        if address_taken(host, port):
            named = f"PORT {port}" if port == settings.port else f"--bind {host}:{port}"
            refuse(server, f"{named}: {host}:{port} is already in use; stop what holds it")


def tcp_addresses(binds):
    """(host, port) of each host:port bind; unix sockets and fd:// ones are skipped."""
    for bind in binds:
        if bind.startswith(("unix:", "fd://")) or ":" not in bind:
            continue
        host, port = bind.rsplit(":", 1)
        yield host.strip("[]"), int(port)


def warn_if_limits_are_per_worker(server):
    """Warn when each worker counts rate limits alone (memory://), outside development."""
    warning = per_worker_warning(settings, LOGINS_PER_EMAIL_AND_CLIENT)
    if warning and not in_development():
        server.log.warning("rate limits: %s", warning)


def serve_metrics_or_refuse(server):
    """Serve /metrics on METRICS_BIND:METRICS_PORT from the master, before gunicorn listens."""
    port, address = settings.metrics_port, settings.metrics_bind
    try:
        serve_metrics(port, address)
    except OSError as error:
        refuse(
            server,
            f"METRICS_PORT {port} on {address}: {error.strerror}; set METRICS_PORT to a free port",
        )
    server.log.info("metrics on http://%s:%s/metrics", address, port)


def refuse(server, reason):
    """Log reason as gunicorn's other lines are (LOG_FORMAT), and stop before listening."""
    server.log.error("refusing to start: %s", reason)
    sys.exit(1)


def post_fork(server, worker):
    """Forget connections inherited from the master (preload_app) without closing them."""
    if server.app.callable is not None:
        dispose_engines(server.app.callable, close=False)


def post_worker_init(worker):
    """Start the worker's pool metrics (bounds, leak sweeper) before its first request."""
    start_pool_metrics(worker.wsgi)


def worker_exit(server, worker):
    """Close this worker's connections, so a stopped worker leaves none on the server."""
    app = getattr(worker, "wsgi", None)
    if app is not None:
        dispose_engines(app, close=True)


def child_exit(server, worker):
    """Drop a dead worker's live gauges (its pool is gone) from /metrics."""
    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    """Remove the metrics folder gunicorn made for itself."""
    if made_metrics_folder:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


def clear_metrics():
    """Start from zero: samples left by an earlier run would be added to ours."""
    folder = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        if name.endswith(".db"):
            os.remove(os.path.join(folder, name))
