"""The two ways the app reaches PostgreSQL in tests: directly, or through a real PgBouncer.

Behind PgBouncer a backend no longer belongs to one client: PgBouncer lends its server
connections to whichever client needs one, and each carries the last client's
application_name. There "ours" means PgBouncer's server connections to the test's database,
and our client connections are counted at PgBouncer (SHOW CLIENTS). The app's own direct
connections (DATABASE_DIRECT_URL) come over the server's Unix socket, so the server tells
them apart from PgBouncer's, which come over TCP.
"""

import time
from dataclasses import dataclass
from functools import cache

from app.database.pgbouncer import pgbouncer_settings
from deploy.pgbouncer import PgBouncer
from tests import pg
from tests.probes import TCP_CONNECTIONS, ConnectionSampler, DatabaseSampler


@dataclass
class Topology:
    """Directly (bouncer None) or through bouncer, with what a test asserts through it."""

    name: str
    bouncer: PgBouncer | None = None

    def env(self, database_url: str) -> dict[str, str]:
        """The app's database variables for a database on the local server."""
        if self.bouncer is None:
            return {"DATABASE_URL": database_url, "DB_POOLER": "none"}
        database = pg.database_name(database_url)
        return {
            "DATABASE_URL": self.bouncer.url(database),
            "DB_POOLER": "pgbouncer",
            "DATABASE_DIRECT_URL": f"postgresql://postgres@/{database}?host={socket_folder()}",
            "PGBOUNCER_ADMIN_URL": self.bouncer.admin_url,
        }

    def sampler(self, application_name: str, database_url: str) -> ConnectionSampler:
        """Samples our server connections: by name directly, PgBouncer's behind it."""
        if self.bouncer is None:
            return ConnectionSampler(application_name)
        return DatabaseSampler(pg.database_name(database_url))

    def server_bound(self, direct_bound: int, database_url: str) -> int:
        """Most server connections allowed: the app's pools directly, PgBouncer's pool else."""
        if self.bouncer is None:
            return direct_bound
        settings, error = pgbouncer_settings(self.bouncer.admin_url)
        assert settings is not None, error
        return settings.server_connections(pg.database_name(database_url))[0]

    def terminate_ours(self, application_name: str, database_url: str) -> int:
        """Kill our server connections, as a failover would; wait until they are gone."""
        if self.bouncer is None:
            return pg.terminate_backends(application_name)
        database = pg.database_name(database_url)
        killed = pg.admin_execute(
            f"SELECT pg_terminate_backend(pid) {TCP_CONNECTIONS}", (database,)
        )
        deadline = time.monotonic() + 5
        while self.server_states(application_name, database_url) and time.monotonic() < deadline:
            time.sleep(0.01)
        return len(killed)

    def lose_connections(self, application_name: str, database_url: str) -> None:
        """Make the app lose its connections: killed backends, or a PgBouncer restart."""
        if self.bouncer is None:
            self.terminate_ours(application_name, database_url)
        else:
            self.bouncer.restart()

    def server_states(self, application_name: str, database_url: str) -> list[str]:
        """The state of each of our server connections."""
        if self.bouncer is None:
            return [state for _, state, _ in pg.our_backends(application_name)]
        rows = pg.admin_execute(
            f"SELECT state {TCP_CONNECTIONS}", (pg.database_name(database_url),)
        )
        return [state for (state,) in rows]

    def pool_connections(self, application_name: str) -> list[int]:
        """Our request pools' connections: backend pids, or client ports at PgBouncer."""
        if self.bouncer is None:
            return sorted(
                pid
                for pid, _, name in pg.our_backends(application_name)
                if name == application_name
            )
        return sorted(
            client["port"]
            for client in self.bouncer.show_clients()
            if client["application_name"] == application_name
        )

    def our_clients(self, application_name: str) -> list:
        """Every connection of ours still open: backends directly, PgBouncer's clients else."""
        if self.bouncer is None:
            return pg.our_backends(application_name)
        return [
            client
            for client in self.bouncer.show_clients()
            if client["application_name"].split("/")[0] == application_name
        ]


@cache
def socket_folder() -> str:
    """Where the local server's Unix socket is."""
    return pg.admin_execute("SHOW unix_socket_directories")[0][0].split(",")[0].strip()
