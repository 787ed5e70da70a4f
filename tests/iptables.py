"""A silence of a loopback TCP port, with iptables: a network that drops every packet.

Silence a private server's port (deploy/private_postgres.py), never the shared server's
5432, which every other client on the machine uses.
"""

import contextlib
import subprocess
from collections.abc import Iterator


def iptables_rules(port: int) -> list[list[str]]:
    """The two rules that drop every loopback packet to and from port."""
    return [
        ["INPUT", "-i", "lo", "-p", "tcp", direction, str(port), "-j", "DROP"]
        for direction in ("--dport", "--sport")
    ]


@contextlib.contextmanager
def silenced(port: int) -> Iterator[None]:
    """Drop every packet to and from a loopback port while inside: a silent network."""
    added = []
    try:
        for rule in iptables_rules(port):
            subprocess.run(["iptables", "-I", *rule], check=True, timeout=10)
            added.append(rule)
        yield
    finally:
        for rule in added:
            subprocess.run(["iptables", "-D", *rule], check=True, timeout=10)
