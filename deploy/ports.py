"""Ports for the servers the project starts (gunicorn, nginx, PgBouncer): free ones, taken ones."""

import errno
import random
import socket
from pathlib import Path

PORT_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_outside_ephemeral_range() -> int:
    """A free loopback port below the range the kernel picks source ports from.

    For a server that is closed or silenced while its clients keep trying to connect:
    were its port ephemeral, one of those attempts could be given it as its own source
    port (Linux then even connects the socket to itself), a silence of the port would
    drop that client's other traffic too, and the server could not bind it again.
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


def address_taken(host: str, port: int) -> bool:
    """Whether binding host:port fails because something else listens there."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As servers bind: a port left in TIME_WAIT is free to them.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            return error.errno == errno.EADDRINUSE
    return False
