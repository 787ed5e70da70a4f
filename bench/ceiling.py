"""S5's connection ceiling: a throwaway role whose CONNECTION LIMIT stands in for a small server.

The shared server's max_connections (100) is far above what S5 opens, so an unbounded pool
would never meet it, and pushing it there would lock out everyone else on the server. S5's
servers connect as a role with CONNECTION LIMIT instead: past it PostgreSQL refuses a new
connection with FATAL, as a small server does at max_connections, and the bench can never
hold more than the limit on the shared server. Superusers are exempt from role limits, so
the stall, the sampler and the clean-up (all as postgres) always get in.
"""

import uuid
from collections import Counter

import psycopg2
from sqlalchemy.engine import make_url

from bench.postgres import admin_execute
from bench.sampler import BackgroundLoop

NEIGHBOUR_INTERVAL_S = 0.1
GRANTS = (
    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
    "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
)


def create_role(database_url: str, limit: int) -> str:
    """A login role limited to `limit` connections, allowed to use the bench's tables."""
    role = f"bench_{uuid.uuid4().hex[:12]}"
    admin_execute(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT {int(limit)}')
    try:
        grant_tables(database_url, role)
    except BaseException:
        drop_role(role)
        raise
    return role


def grant_tables(database_url: str, role: str) -> None:
    """Let role read and write the tables of the bench's database (and nothing else)."""
    connection = psycopg2.connect(database_url)
    try:
        with connection, connection.cursor() as cursor:
            for grant in GRANTS:
                cursor.execute(grant.format(role=f'"{role}"'))
    finally:
        connection.close()


def drop_role(role: str) -> None:
    """Drop the role; run after its database is dropped, which takes its grants with it."""
    admin_execute(f'DROP ROLE IF EXISTS "{role}"')


def url_as(database_url: str, role: str) -> str:
    """The same database, connected to as role."""
    return make_url(database_url).set(username=role).render_as_string(hide_password=False)


class Neighbour(BackgroundLoop):
    """Another client of the same small server (a cron job, psql): connects every 100 ms.

    What operators are paged for is not the app's own errors but everyone else refused a
    connection; this counts those refusals. Use as a context manager around the load.
    """

    interval_s = NEIGHBOUR_INTERVAL_S

    def __init__(self, url: str):
        self.url = url
        self.attempts = 0
        self.refusals: Counter[str] = Counter()

    def tick(self) -> None:
        """One connection attempt."""
        self.attempts += 1
        self.try_to_connect()

    def try_to_connect(self) -> None:
        """Connect and close at once; count a refusal by the server's words."""
        try:
            connection = psycopg2.connect(self.url, application_name="bench-neighbour")
            connection.close()
        except psycopg2.OperationalError as error:
            self.refusals[server_words(str(error))] += 1

    def result(self) -> dict:
        """Attempts, refusals and what the server said."""
        return {
            "attempts": self.attempts,
            "refused": sum(self.refusals.values()),
            "errors": dict(self.refusals),
        }


def server_words(error: str) -> str:
    """The server's message in a psycopg2 connection error, without the address before it."""
    return error.split("FATAL:", 1)[-1].strip().splitlines()[0]
