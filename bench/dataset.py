"""A throwaway database, migrated the way a release does, filled by bulk SQL."""

from dataclasses import dataclass

import psycopg2

from tests import pg


@dataclass(frozen=True)
class DataSize:
    """How many rows of each kind the benchmark loads."""

    services: int
    users: int
    orders: int


FULL = DataSize(services=1_000, users=10_000, orders=100_000)
SMOKE = DataSize(services=50, users=100, orders=1_000)

SERVICES_SQL = """
INSERT INTO services (name, description, price_cents, active, created_at, updated_at)
SELECT 'Service ' || n, 'Benchmark service number ' || n || ', with a description of some length',
       500 + (n * 37) %% 20000, true, now(), now()
FROM generate_series(1, %(services)s) AS n
"""


def create_database() -> tuple[str, str]:
    """Create and migrate a throwaway database; return its name and URL."""
    name, url = pg.create_database(prefix="bench")
    try:
        pg.migrate(url)
    except BaseException:
        pg.drop_database(name)
        raise
    return name, url


def drop_database(name: str) -> None:
    """Drop the throwaway database and whatever is still connected to it."""
    pg.drop_database(name)


def load(url: str, size: DataSize) -> dict[str, int]:
    """Fill the database with size's rows; return the row counts found afterwards."""
    connection = psycopg2.connect(url)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(SERVICES_SQL, size.__dict__)
            cursor.execute("ANALYZE")
        return count_rows(connection)
    finally:
        connection.close()


def count_rows(connection) -> dict[str, int]:
    """Rows in each table the scenarios read."""
    counts = {}
    with connection.cursor() as cursor:
        for table in ("services",):
            cursor.execute(f"SELECT count(*), coalesce(max(id), 0) FROM {table}")
            counts[table], counts[f"max_{table}_id"] = cursor.fetchone()
    return counts
