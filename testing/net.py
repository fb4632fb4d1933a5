"""Network doubles for dependencies that are down: a port that refuses every connection, and a server that accepts
connections and never answers (a dependency whose packets are dropped, or that hangs)."""

from __future__ import annotations

import socket

_held: list[socket.socket] = []


def closed_port() -> int:
    """A port on 127.0.0.1 that refuses connections for the rest of the test run: bound by this process and never
    listened on (Linux answers a connection to it with a reset), so no other program can start listening there
    meanwhile, as it could on a port merely found free a moment ago."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    _held.append(sock)
    return sock.getsockname()[1]


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago, for a server the test starts (which binds it at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SilentServer:
    """A listening socket on 127.0.0.1 that nobody serves: the kernel completes each connection (the client's
    connect succeeds) and then nothing is ever read or answered, so every request on it ends in the client's timeout.
    `connections()` counts the connections made to it so far: each is one attempt, and so one timeout, of a
    client that used it."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self._accepted: list[socket.socket] = []

    def url(self, scheme: str = "redis", path: str = "/0") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def connections(self) -> int:
        """Connections made so far. A client's connect() returns once the kernel completed the handshake, and the
        connection then waits in the backlog: so every connection made before this call is counted."""
        while True:
            try:
                sock, _ = self.listener.accept()
            except BlockingIOError:
                return len(self._accepted)
            self._accepted.append(sock)  # held open, unanswered, until close()

    def close(self) -> None:
        for sock in self._accepted:
            sock.close()
        self.listener.close()

    def __enter__(self) -> SilentServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
