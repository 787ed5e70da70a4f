"""bench/netproxy.py counts what the wire carries: one round trip per query, none to connect."""

import struct

import psycopg2
import pytest

from bench.netproxy import MessageCounter, NetProxy, measure_added_rtt
from bench.postgres import SERVER_URL as BENCH_SERVER_URL

SERVER_URL = BENCH_SERVER_URL + "/postgres"


def message(kind: bytes, body: bytes) -> bytes:
    """One typed frontend message."""
    return kind + struct.pack("!i", len(body) + 4) + body


def startup_packet() -> bytes:
    """A protocol 3.0 startup packet for user postgres."""
    body = struct.pack("!i", 196608) + b"user\0postgres\0\0"
    return struct.pack("!i", len(body) + 4) + body


def test_the_counter_finds_every_message_however_the_stream_is_cut():
    stream = (
        startup_packet()
        + message(b"Q", b"SELECT 1\0")
        + message(b"P", b"\0SELECT 2\0\0\0")
        + message(b"S", b"")
        + message(b"Q", b"COMMIT\0")
    )
    for size in (1, 3, 7, len(stream)):
        counter = MessageCounter(startup=True)
        for start in range(0, len(stream), size):
            counter.feed(stream[start : start + size])
        assert counter.count({ord("Q")}) == 2
        assert counter.count({ord("S")}) == 1
        assert counter.count({ord("P")}) == 1


def test_the_counter_gives_up_on_a_length_no_message_has():
    counter = MessageCounter(startup=True)
    counter.feed(startup_packet() + b"Q" + struct.pack("!i", 2) + message(b"Q", b"SELECT 1\0"))
    assert counter.lost


@pytest.fixture(scope="module")
def proxy():
    with NetProxy(delay_ms=0.5) as running:
        yield running


def connect(proxy: NetProxy):
    """A psycopg2 connection through the proxy, as the app makes one (sslmode=prefer)."""
    return psycopg2.connect(proxy.url(SERVER_URL), application_name="test-netproxy")


def round_trips_of(proxy: NetProxy, work) -> tuple[int, int]:
    """Round trips and new connections while work(connection) runs on a fresh connection."""
    connection = connect(proxy)
    try:
        before = proxy.totals()
        work(connection)
        after = proxy.totals()
    finally:
        connection.close()
    return after.round_trips - before.round_trips, after.connections - before.connections


def test_three_queries_in_autocommit_are_three_round_trips(proxy):
    def three_queries(connection):
        connection.autocommit = True
        with connection.cursor() as cursor:
            for number in range(3):
                cursor.execute("SELECT %s", (number,))

    assert round_trips_of(proxy, three_queries) == (3, 0)


def test_a_transaction_of_one_query_is_begin_query_commit(proxy):
    def one_transaction(connection):
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        connection.commit()

    assert round_trips_of(proxy, one_transaction) == (3, 0)


def test_connecting_costs_a_connection_and_no_round_trip(proxy):
    before = proxy.totals()
    connect(proxy).close()
    after = proxy.totals(since=before.connections)
    assert after.connections - before.connections == 1
    assert after.round_trips == before.round_trips
    assert after.round_trips_on_new == 0


def test_the_proxy_adds_about_its_delay_to_each_round_trip(proxy):
    measured = measure_added_rtt(proxy, SERVER_URL, samples=50)
    assert measured["added_ms"] >= 0.9 * measured["nominal_ms"]
    holds = proxy.holds()
    assert holds["chunks"] > 0 and holds["p50_ms"] >= 0.5
