"""A loopback TCP proxy in front of PostgreSQL, to take the database away and bring it back."""

import contextlib
import random
import socket
import threading
from pathlib import Path

PORT_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def port_outside_ephemeral_range() -> int:
    """A free loopback port below the range the kernel picks source ports from.

    While the proxy is closed the app keeps trying to connect to its port. Were that port
    ephemeral, one of those attempts could be given it as its own source port (Linux then
    even connects the socket to itself), and reopening the proxy would fail to bind.
    """
    lowest_ephemeral = int(PORT_RANGE_FILE.read_text().split()[0])
    for port in random.sample(range(10_000, lowest_ephemeral), 100):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


class TcpProxy:
    """Forwards 127.0.0.1:port to a target while open; refuses connections while closed."""

    def __init__(self, target: tuple[str, int], port: int):
        self.target, self.port = target, port
        self.listener: socket.socket | None = None
        self.sockets: list[socket.socket] = []

    def open(self) -> None:
        """Start accepting and forwarding connections."""
        self.listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        threading.Thread(target=self.accept_loop, args=(self.listener,), daemon=True).start()

    def close(self) -> None:
        """Stop listening and cut every forwarded connection, as a vanished server would."""
        if self.listener:
            self.listener.close()
            self.listener = None
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.sockets.clear()

    def accept_loop(self, listener: socket.socket) -> None:
        """Pair each client with a fresh connection to the target."""
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=pump, args=(source, sink), daemon=True).start()


def pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy bytes one way until either side closes."""
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
