"""The bench's rows, filled by bulk SQL into a throwaway database (bench/postgres.py)."""

from dataclasses import dataclass

import psycopg2
from werkzeug.security import generate_password_hash

BENCH_PASSWORD = "bench-password-1"
# The signed-in users of S2–S4, each with more orders than a page of 20 shows.
SIGNED_IN_USERS = 32
ORDERS_PER_SIGNED_IN_USER = 40


@dataclass(frozen=True)
class DataSize:
    """How many rows of each kind the benchmark loads."""

    services: int
    users: int
    orders: int


FULL = DataSize(services=1_000, users=10_000, orders=100_000)
SMOKE = DataSize(services=50, users=SIGNED_IN_USERS, orders=1_000)

# Also how the tests insert a committed service row (tests/pg.py).
SERVICES_SQL = """
INSERT INTO services (name, description, price_cents, active, created_at, updated_at)
SELECT 'Service ' || n, 'Benchmark service number ' || n || ', with a description of some length',
       500 + (n * 37) %% 20000, true, now(), now()
FROM generate_series(1, %(services)s) AS n
RETURNING id
"""
# One slow hash for every user: hashing 10,000 passwords would take minutes.
USERS_SQL = """
INSERT INTO users (email, password_hash, name, role, created_at, updated_at)
SELECT 'user' || n || '@bench.example', %(password_hash)s, 'Bench user ' || n, 'customer',
       now(), now()
FROM generate_series(1, %(users)s) AS n
"""
# The first orders go to the signed-in users, the rest round the others; priced as the
# API would (no benefit), newest last.
ORDERS_SQL = """
INSERT INTO orders (user_id, service_id, quantity, unit_price_cents, discount_percent,
                    discount_cents, total_cents, status, notes, version, created_at, updated_at)
SELECT g.user_id, s.id, g.quantity, s.price_cents, 0, 0, s.price_cents * g.quantity, 'pending',
       '', 1, now() - (%(orders)s - g.n) * interval '1 second', now()
FROM (
  SELECT n,
         CASE WHEN n <= %(signed_in)s * %(per_signed_in)s THEN 1 + n %% %(signed_in)s
              ELSE 1 + n %% %(users)s END AS user_id,
         1 + (n * 7) %% %(services)s AS service_id,
         1 + n %% 5 AS quantity
  FROM generate_series(1, %(orders)s) AS n
) AS g JOIN services AS s ON s.id = g.service_id
"""
# One benefit for every service, so an order can name a code (bench/roundtrips.py).
BENEFIT_CODE = "BENCH10"
BENEFIT_SQL = """
INSERT INTO benefits (code, title, description, discount_percent, active, created_at, updated_at)
VALUES (%(code)s, 'Bench benefit', '', 10, true, now(), now())
"""


def load(url: str, size: DataSize) -> dict[str, int]:
    """Fill the database with size's rows; return the row counts found afterwards."""
    connection = psycopg2.connect(url)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(SERVICES_SQL, size.__dict__)
            if has_api_tables(cursor):
                load_users_and_orders(cursor, size)
            if has_table(cursor, "benefits"):
                cursor.execute(BENEFIT_SQL, {"code": BENEFIT_CODE})
            cursor.execute("ANALYZE")
        return count_rows(connection)
    finally:
        connection.close()


def has_api_tables(cursor) -> bool:
    """Whether the migrated schema has the API's users and orders (issue 3)."""
    cursor.execute("SELECT to_regclass('users') IS NOT NULL AND to_regclass('orders') IS NOT NULL")
    return cursor.fetchone()[0]


def has_table(cursor, name: str) -> bool:
    """Whether the migrated schema has this table."""
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (name,))
    return cursor.fetchone()[0]


def load_users_and_orders(cursor, size: DataSize) -> None:
    """Bulk-insert the users (one shared password) and their orders."""
    password_hash = generate_password_hash(BENCH_PASSWORD, method="scrypt")
    cursor.execute(USERS_SQL, {"users": size.users, "password_hash": password_hash})
    parameters = {
        **size.__dict__,
        "signed_in": SIGNED_IN_USERS,
        "per_signed_in": ORDERS_PER_SIGNED_IN_USER,
    }
    cursor.execute(ORDERS_SQL, parameters)


def signed_in_emails() -> list[str]:
    """The emails of the users S2–S4 sign in as."""
    return [f"user{n}@bench.example" for n in range(1, SIGNED_IN_USERS + 1)]


def count_rows(connection) -> dict[str, int]:
    """Rows in each table the scenarios read."""
    counts = {}
    with connection.cursor() as cursor:
        tables = ("services", "users", "orders") if has_api_tables(cursor) else ("services",)
        for table in tables:
            cursor.execute(f"SELECT count(*), coalesce(max(id), 0) FROM {table}")
            counts[table], counts[f"max_{table}_id"] = cursor.fetchone()
    return counts
