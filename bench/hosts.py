"""Many hosts, one PgBouncer (issue 8): S1's read from 1, 2 and 3 app hosts at once.

One PgBouncer (deploy/pgbouncer.py: the shipped ini with default_pool_size=4 and no reserve
pool) serves every step; each step starts its own app hosts (gunicorn instances with
DB_POOLER=pgbouncer), loads them all at once, one wrk connection per worker thread, and
stops them. The clients grow with the hosts while the server
connections to the database stay at PgBouncer's pool: the clients queue in PgBouncer, not
on the server.
"""

from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from statistics import median

from app.database.budget import HEALTH_PROBE_CONNECTIONS
from bench.load import Load, run_wrk
from bench.plan import Plan
from bench.postgres import database_name
from bench.runner import SECRET_KEY, Target, application_name, serving, socket_errors
from bench.sampler import ServerSampler
from bench.servers import Server, ServerSpec
from deploy.pgbouncer import PgBouncer

SERVER_CONNECTIONS = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND backend_type = 'client backend'"
)
SERVER_STATES = ("sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login")


def host_spec(plan: Plan, target: Target, bouncer: PgBouncer, name: str) -> ServerSpec:
    """One app host on PgBouncer, configured as SPEC's variables say."""
    environment = {
        "DATABASE_URL": bouncer.url(database_name(target.url)),
        "DB_POOLER": "pgbouncer",
        "DATABASE_DIRECT_URL": target.url,
        "PGBOUNCER_ADMIN_URL": bouncer.admin_url,
        "SECRET_KEY": SECRET_KEY,
        "DB_APPLICATION_NAME": name,
        "WEB_CONCURRENCY": str(plan.host_workers),
        "GUNICORN_THREADS": str(plan.host_threads),
        "DB_POOL_SIZE": str(plan.host_pool_size),
        "DB_MAX_OVERFLOW": "0",
        # This host's worst case of clients at PgBouncer: its pools and a health probe each.
        "DB_CONNECTION_BUDGET": str(
            plan.host_workers * (plan.host_pool_size + HEALTH_PROBE_CONNECTIONS)
        ),
        "DB_POOL_PRE_PING": "true" if plan.pre_ping else "false",
    }
    return ServerSpec("host", None, environment)


class PoolSampler(ServerSampler):
    """Every 100 ms: the server's connections to our database, and PgBouncer's clients."""

    def __init__(self, bouncer: PgBouncer, database: str):
        self.bouncer, self.database = bouncer, database
        self.server_connections: list[int] = []
        self.pooler_servers: list[int] = []
        self.clients: list[int] = []

    def tick(self) -> None:
        """One sample of each."""
        with self.connection.cursor() as cursor:
            cursor.execute(SERVER_CONNECTIONS, (self.database,))
            self.server_connections.append(cursor.fetchone()[0])
        pool = self.bouncer.pool(self.database)
        self.clients.append(pool.get("cl_active", 0) + pool.get("cl_waiting", 0))
        self.pooler_servers.append(sum(pool.get(state, 0) for state in SERVER_STATES))


def run_hosts(plan: Plan, target: Target, run_index: int) -> dict:
    """Each host count of the plan in turn, behind one PgBouncer."""
    with PgBouncer(default_pool_size=plan.bouncer_pool_size, reserve_pool_size=0) as bouncer:
        return {
            str(count): run_step(plan, target, bouncer, count, run_index)
            for count in plan.host_counts
        }


def run_step(plan: Plan, target: Target, bouncer: PgBouncer, count: int, run_index: int) -> dict:
    """Start count hosts, warm them up, load them together and stop them."""
    args = (str(target.max_service_id),)
    with ExitStack() as stack:
        hosts = [
            stack.enter_context(serving(host_spec(plan, target, bouncer, name), plan.logs_dir))
            for name in host_names(plan, run_index, count)
        ]
        durations = plan.durations
        load_all(hosts, Load("services.lua", plan.host_connections, 1, durations.warmup_s, args))
        load = Load("services.lua", plan.host_connections, 1, durations.throughput_s, args)
        with PoolSampler(bouncer, database_name(target.url)) as sampler:
            summaries = load_all(hosts, load)
    return step_result(plan, summaries, sampler)


def host_names(plan: Plan, run_index: int, count: int) -> list[str]:
    """The application_names of one step's hosts, shared with no other step or run."""
    return [application_name(plan, f"hosts{count}-{n}", run_index) for n in range(1, count + 1)]


def load_all(hosts: list[Server], load: Load) -> list[dict]:
    """Run the same wrk load against every host at once; return each summary."""
    with ThreadPoolExecutor(len(hosts)) as pool:
        return list(pool.map(lambda host: run_wrk(load, host.base_url), hosts))


def step_result(plan: Plan, summaries: list[dict], sampler: PoolSampler) -> dict:
    """What one step's hosts served together, and what the server held meanwhile."""
    hosts = len(summaries)
    return {
        "hosts": hosts,
        "throughput_rps": sum(summary["throughput_rps"] for summary in summaries),
        "p50_ms": median(summary["latency_p50_us"] for summary in summaries) / 1000,
        "p99_ms": median(summary["latency_p99_us"] for summary in summaries) / 1000,
        "requests": sum(summary["requests"] for summary in summaries),
        "non_2xx": sum(summary["non_2xx"] for summary in summaries),
        "socket_errors": sum(socket_errors(summary) for summary in summaries),
        "client_bound": hosts * plan.host_client_bound,
        "peak_clients": max(sampler.clients, default=0),
        "peak_server_connections": max(sampler.server_connections, default=0),
        "peak_pooler_servers": max(sampler.pooler_servers, default=0),
        "server_pool": plan.bouncer_pool_size,
    }
