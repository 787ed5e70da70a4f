"""A loopback TCP proxy before PostgreSQL that delays every chunk and counts round trips.

    python -m bench.netproxy --listen PORT --to 127.0.0.1:5432 --delay-ms 0.5

Each chunk read from either side is held for the delay, then passed on in order, as
toxiproxy's latency toxic does: a database one network hop away, on a machine with no
netem. What the client sends is parsed as PostgreSQL's frontend protocol: after the startup
packet, messages of one type byte and an int32 length. Each simple query ('Q') and each
Sync of the extended protocol ('S') is one round trip: the client waits for the server's
ReadyForQuery ('Z') before it goes on. The startup packet and authentication are no query
and count as connections, not round trips.

The proxy answers an SSLRequest or GSSENCRequest itself with 'N', so the stream it parses
is never encrypted. A second port, the control, answers one JSON line of totals
(`totals [SINCE]`) or of the chunks' real hold times since the last ask (`holds`). The
proxy stops on SIGTERM or Ctrl-C, and with --exit-on-eof (how bench.netproxy.NetProxy starts
it) when its standard input closes: when the bench that started it ends, however it ends.
"""

import argparse
import asyncio
import ipaddress
import json
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import median

import psycopg2
from sqlalchemy.engine import make_url

from bench.servers import cpu_s
from bench.stats import percentile

ROOT = Path(__file__).resolve().parent.parent
CHUNK_BYTES = 65536
# Startup-phase request codes (PostgreSQL's protocol, "Message Formats").
ENCRYPTION_REQUESTS = {80877103, 80877104}  # SSLRequest, GSSENCRequest
ROUND_TRIP_TYPES = {ord("Q"), ord("S")}
READY_FOR_QUERY = ord("Z")
READY_TIMEOUT_S = 10
RTT_SAMPLES = 300


class MessageCounter:
    """Counts one direction's messages by type byte, however the stream is chunked."""

    def __init__(self, startup: bool):
        # The client's first message, the startup packet, has a length but no type byte.
        self.in_startup = startup
        self.header = b""
        self.body_left = 0
        self.counts: dict[int, int] = {}
        self.startup_codes: list[int] = []
        # Set on a length no message can have: what follows cannot be told apart.
        self.lost = False

    def header_size(self) -> int:
        """Bytes before a message's body: length and code at startup, else type and length."""
        return 8 if self.in_startup else 5

    def feed(self, data: bytes) -> None:
        """Account for one chunk of the stream."""
        position, end = 0, len(data)
        while position < end and not self.lost:
            if self.body_left:
                step = min(self.body_left, end - position)
                self.body_left -= step
                position += step
                continue
            wanted = self.header_size() - len(self.header)
            self.header += data[position : position + wanted]
            position += wanted
            if len(self.header) == self.header_size():
                self.read_header()

    def read_header(self) -> None:
        """Count the message whose header is complete and skip its body."""
        if self.in_startup:
            length, code = struct.unpack("!ii", self.header)
            self.startup_codes.append(code)
            # After an encryption request comes the real startup packet (or a cancel).
            self.in_startup = code in ENCRYPTION_REQUESTS
            self.body_left = length - 8
        else:
            kind, length = self.header[0], struct.unpack("!i", self.header[1:])[0]
            self.counts[kind] = self.counts.get(kind, 0) + 1
            self.body_left = length - 4
        self.lost = self.body_left < 0
        self.header = b""

    def count(self, kinds) -> int:
        """How many messages of these type bytes went by."""
        return sum(self.counts.get(kind, 0) for kind in kinds)


@dataclass
class Connection:
    """One client's connection through the proxy and what went each way."""

    serial: int
    sent: MessageCounter
    received: MessageCounter
    bytes_sent: int = 0
    bytes_received: int = 0
    closed: bool = False

    @property
    def round_trips(self) -> int:
        """Queries and Syncs the client sent."""
        return self.sent.count(ROUND_TRIP_TYPES)

    @property
    def in_flight(self) -> bool:
        """Whether a round trip is still unanswered (the startup's own ReadyForQuery aside)."""
        answered = self.received.count({READY_FOR_QUERY}) - 1
        return not self.closed and self.round_trips > max(0, answered)

    @property
    def lost(self) -> bool:
        """Whether either direction could not be parsed: its counts are not to be trusted."""
        return self.sent.lost or self.received.lost


@dataclass(frozen=True)
class Totals:
    """Everything the proxy counted since it started, as the control answers it."""

    connections: int
    round_trips: int
    queries: int
    syncs: int
    in_flight: int
    lost: int
    bytes_sent: int
    bytes_received: int
    round_trips_on_new: int = 0

    @classmethod
    def from_json(cls, line: str) -> "Totals":
        """Parse the control's answer."""
        return cls(**json.loads(line))


class DelayProxy:
    """The proxy's state: the delay, the upstream, every connection, the hold samples."""

    def __init__(self, upstream: tuple[str, int], delay_s: float):
        self.upstream, self.delay_s = upstream, delay_s
        self.connections: list[Connection] = []
        self.holds_s: list[float] = []

    async def serve_client(self, client_reader, client_writer) -> None:
        """Answer any encryption request, then pump both ways through the delay."""
        connection = Connection(
            len(self.connections) + 1, MessageCounter(True), MessageCounter(False)
        )
        self.connections.append(connection)
        try:
            first = await self.refuse_encryption(client_reader, client_writer)
            server_reader, server_writer = await asyncio.open_connection(*self.upstream)
        except (OSError, asyncio.IncompleteReadError):
            connection.closed = True
            client_writer.close()
            return
        try:
            await asyncio.gather(
                self.pump(client_reader, server_writer, connection, upstream=True, first=first),
                self.pump(server_reader, client_writer, connection, upstream=False),
            )
        except asyncio.CancelledError:
            # The proxy is stopping. Returning, not raising: asyncio's streams would log
            # a cancelled client task as an error.
            return
        finally:
            connection.closed = True

    async def refuse_encryption(self, reader, writer) -> bytes:
        """Answer 'N' to each SSLRequest or GSSENCRequest; return the startup packet's header."""
        while True:
            header = await reader.readexactly(8)
            if struct.unpack("!ii", header)[1] not in ENCRYPTION_REQUESTS:
                return header
            await asyncio.sleep(2 * self.delay_s)  # The hop there and back, as if forwarded.
            writer.write(b"N")

    async def pump(self, reader, writer, connection: Connection, upstream: bool, first=b""):
        """Read chunks as they come (first, already read, before them); a second task writes
        each once its delay is over."""
        queue: asyncio.Queue = asyncio.Queue()
        sender = asyncio.create_task(self.deliver(queue, writer))
        counter = connection.sent if upstream else connection.received
        data = first
        try:
            while data or (data := await reader.read(CHUNK_BYTES)):
                queue.put_nowait((time.monotonic(), data))
                counter.feed(data)
                if upstream:
                    connection.bytes_sent += len(data)
                else:
                    connection.bytes_received += len(data)
                data = b""
        except OSError:
            pass
        queue.put_nowait((time.monotonic(), b""))
        await sender

    async def deliver(self, queue: asyncio.Queue, writer) -> None:
        """Write each chunk when it has been held for the delay; half-close at the end."""
        try:
            while True:
                arrived, data = await queue.get()
                wait = arrived + self.delay_s - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    break
                self.holds_s.append(time.monotonic() - arrived)
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except OSError:
            pass
        finally:
            writer.close()

    def totals(self, since: int | None = None) -> dict:
        """The running totals; with since, also the round trips of connections after it."""
        connections = self.connections
        counted = {
            "connections": len(connections),
            "round_trips": sum(c.round_trips for c in connections),
            "queries": sum(c.sent.count({ord("Q")}) for c in connections),
            "syncs": sum(c.sent.count({ord("S")}) for c in connections),
            "in_flight": sum(c.in_flight for c in connections),
            "lost": sum(c.lost for c in connections),
            "bytes_sent": sum(c.bytes_sent for c in connections),
            "bytes_received": sum(c.bytes_received for c in connections),
        }
        if since is not None:
            counted["round_trips_on_new"] = sum(c.round_trips for c in connections[since:])
        return counted

    def take_holds(self) -> dict:
        """How long chunks were really held since the last ask, in ms; then forget them."""
        holds, self.holds_s = self.holds_s, []
        return {
            "chunks": len(holds),
            "p50_ms": ms(percentile(holds, 50)),
            "p99_ms": ms(percentile(holds, 99)),
        }

    async def answer_control(self, reader, writer) -> None:
        """One command line in, one JSON line out."""
        words = (await reader.readline()).decode().split()
        if words[:1] == ["holds"]:
            answer = self.take_holds()
        else:
            answer = self.totals(int(words[1]) if len(words) > 1 else None)
        writer.write(json.dumps(answer).encode() + b"\n")
        await writer.drain()
        writer.close()


def ms(seconds: float | None) -> float | None:
    """Seconds as milliseconds, keeping None."""
    return None if seconds is None else seconds * 1000


def loopback_address(text: str) -> tuple[str, int]:
    """HOST:PORT, refused unless HOST is a loopback address: the bench targets nothing else."""
    host, _, port = text.rpartition(":")
    if not ipaddress.ip_address(host).is_loopback:
        raise argparse.ArgumentTypeError(f"{host} is not a loopback address")
    return host, int(port)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.netproxy", description=__doc__)
    parser.add_argument("--listen", type=int, default=0, help="port to accept on (any free)")
    parser.add_argument("--control", type=int, default=0, help="port of the control (any free)")
    parser.add_argument("--to", type=loopback_address, default=("127.0.0.1", 5432))
    parser.add_argument("--delay-ms", type=float, default=0.5, help="held each way (0.5)")
    parser.add_argument(
        "--exit-on-eof", action="store_true", help="stop when stdin closes (as the bench runs it)"
    )
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    """Listen, print the ports as one JSON line, and serve until stdin closes or a signal."""
    proxy = DelayProxy(args.to, args.delay_ms / 1000)
    listener = await asyncio.start_server(proxy.serve_client, "127.0.0.1", args.listen)
    control = await asyncio.start_server(proxy.answer_control, "127.0.0.1", args.control)
    ports = {"listen": bound_port(listener), "control": bound_port(control)}
    print(json.dumps(ports), flush=True)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, stopping.set)
    if args.exit_on_eof:
        threading.Thread(target=wait_for_eof, args=(loop, stopping), daemon=True).start()
    await stopping.wait()
    listener.close()
    control.close()
    await cancel_connections()


async def cancel_connections() -> None:
    """End every connection's tasks while the loop still runs, so each closes its sockets."""
    tasks = asyncio.all_tasks() - {asyncio.current_task()}
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def bound_port(server: asyncio.Server) -> int:
    """The port an asyncio server listens on."""
    return server.sockets[0].getsockname()[1]


def wait_for_eof(loop: asyncio.AbstractEventLoop, stopping: asyncio.Event) -> None:
    """Block until standard input closes, then stop the loop: the parent is gone."""
    # The raw descriptor: a thread blocked in sys.stdin's buffer would hold its lock at exit.
    while os.read(sys.stdin.fileno(), 4096):
        pass
    loop.call_soon_threadsafe(stopping.set)


def main(argv: list[str] | None = None) -> int:
    """Run the proxy on a loop whose timers keep sub-millisecond delays."""
    # epoll and poll round every timeout up to a whole millisecond; select() takes
    # microseconds, so a 0.5 ms hold is not served as 1 ms. A handful of sockets is all
    # the proxy has, far below select()'s limit.
    loop = asyncio.SelectorEventLoop(selectors.SelectSelector())
    try:
        loop.run_until_complete(serve(parse_args(argv)))
    finally:
        loop.close()
    return 0


class NetProxy:
    """The proxy in a process of its own, for as long as it is entered (bench side)."""

    def __init__(self, upstream: str = "127.0.0.1:5432", delay_ms: float = 0.5):
        self.upstream, self.delay_ms = upstream, delay_ms
        self.process: subprocess.Popen | None = None
        self.port = self.control_port = 0

    def __enter__(self) -> "NetProxy":
        command = [sys.executable, "-m", "bench.netproxy", "--to", self.upstream]
        command += ["--delay-ms", f"{self.delay_ms:g}", "--exit-on-eof"]
        environment = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=environment, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        ports = json.loads(self.process.stdout.readline() or "null")
        if not ports:
            self.stop()
            raise RuntimeError("bench.netproxy did not start")
        self.port, self.control_port = ports["listen"], ports["control"]
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        """Close its stdin, which ends it; kill it if it lingers."""
        self.process.stdin.close()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def url(self, database_url: str) -> str:
        """database_url with the proxy in place of the server."""
        return (
            make_url(database_url)
            .set(host="127.0.0.1", port=self.port)
            .render_as_string(hide_password=False)
        )

    def ask(self, command: str) -> str:
        """Send the control one command; return its answer line."""
        with socket.create_connection(("127.0.0.1", self.control_port), READY_TIMEOUT_S) as sock:
            sock.sendall(command.encode() + b"\n")
            return sock.makefile().readline()

    def totals(self, since: int | None = None) -> Totals:
        """The running totals; since (a connection count) adds the newer ones' round trips."""
        return Totals.from_json(self.ask("totals" if since is None else f"totals {since}"))

    def holds(self) -> dict:
        """The chunks' real hold times since the last call (count, p50_ms, p99_ms)."""
        return json.loads(self.ask("holds"))

    def cpu_s(self) -> float:
        """CPU seconds the proxy's process has used, user and system."""
        return cpu_s(self.process.pid)


def measure_added_rtt(proxy: NetProxy, database_url: str, samples: int = RTT_SAMPLES) -> dict:
    """`SELECT 1` timed direct and through the proxy, alternately: the medians in ms."""
    direct = psycopg2.connect(database_url, application_name="bench-netproxy-rtt")
    proxied = psycopg2.connect(proxy.url(database_url), application_name="bench-netproxy-rtt")
    try:
        timings = {"direct": [], "proxied": []}
        for connection in (direct, proxied):
            connection.autocommit = True
        for _ in range(samples):
            for name, connection in (("direct", direct), ("proxied", proxied)):
                timings[name].append(time_select_one(connection))
    finally:
        direct.close()
        proxied.close()
    direct_ms, proxied_ms = (median(timings[name]) * 1000 for name in ("direct", "proxied"))
    return {
        "nominal_ms": 2 * proxy.delay_ms,
        "direct_ms": direct_ms,
        "proxied_ms": proxied_ms,
        "added_ms": proxied_ms - direct_ms,
        "samples": samples,
    }


def time_select_one(connection) -> float:
    """Seconds of one `SELECT 1` round trip."""
    with connection.cursor() as cursor:
        started = time.perf_counter()
        cursor.execute("SELECT 1")
        cursor.fetchone()
        return time.perf_counter() - started


if __name__ == "__main__":
    raise SystemExit(main())
