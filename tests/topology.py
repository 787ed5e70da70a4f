"""The two ways the app reaches PostgreSQL in tests: directly, or through a real PgBouncer."""

from dataclasses import dataclass

from deploy.pgbouncer import PgBouncer
from tests import pg
from tests.probes import ConnectionSampler, DatabaseSampler


@dataclass
class Topology:
    """Directly (bouncer None) or through bouncer, with what a test asserts through it."""

    name: str
    bouncer: PgBouncer | None = None

    @property
    def pooled(self) -> bool:
        """Whether the app talks to PgBouncer."""
        return self.bouncer is not None

    def env(self, database_url: str) -> dict[str, str]:
        """The app's database variables for a database on the local server."""
        if self.bouncer is None:
            return {"DATABASE_URL": database_url, "DB_POOLER": "none"}
        return {
            "DATABASE_URL": self.bouncer.url(database_name(database_url)),
            "DB_POOLER": "pgbouncer",
            "DATABASE_DIRECT_URL": database_url,
            "PGBOUNCER_ADMIN_URL": self.bouncer.admin_url,
        }

    def sampler(self, application_name: str, database_url: str):
        """Samples our server connections: by name directly, by database behind PgBouncer.

        PgBouncer's server connections carry the last client's application_name, so
        behind it every server connection to the test's database counts as ours.
        """
        if self.bouncer is None:
            return ConnectionSampler(application_name)
        return DatabaseSampler(database_name(database_url))

    def our_clients(self, application_name: str) -> list[dict]:
        """Our connections still open: server backends directly, PgBouncer's clients else."""
        if self.bouncer is None:
            return pg.our_backends(application_name)
        return [
            client
            for client in self.bouncer.show_clients()
            if client["application_name"].split("/")[0] == application_name
        ]


def database_name(database_url: str) -> str:
    """The database a postgresql:// URL names."""
    return database_url.rsplit("/", 1)[1]
