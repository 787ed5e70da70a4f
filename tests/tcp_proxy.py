"""A loopback TCP proxy in front of PostgreSQL, to take the database away and bring it back."""

import contextlib
import socket
import threading


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
