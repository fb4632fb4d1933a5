"""Counting the round trips this process sends to one Redis database, on the client side: what the code under test
costs, whatever else runs on the same server (server-wide figures such as INFO commandstats count every client of
every database, so another test run or `make run` beside this one would change them)."""

from __future__ import annotations

import threading

from redis.connection import AbstractConnection, parse_url


class RoundTrips:
    """Each send of packed commands over a connection to the given Redis URL's server and database is one round trip
    (redis-py's clients and pipelines send a request that way, as does core.redis.send: a lookup's MULTI/EXEC
    transaction and what rides along with it is one). `sent` holds the command names of each round trip, for
    failure messages. Install it with `install(monkeypatch)`."""

    def __init__(self, url: str):
        target = parse_url(url)
        self.target = (target.get("host", "localhost"), int(target.get("port", 6379)), int(target.get("db", 0)))
        self.sent: list[tuple[str, ...]] = []
        self._lock = threading.Lock()

    @property
    def count(self) -> int:
        return len(self.sent)

    @property
    def first_commands(self) -> list[str]:
        """The first command of each round trip (MULTI: a transaction, such as a lookup's read)."""
        return [names[0] if names else "" for names in self.sent]

    def reset(self) -> None:
        with self._lock:
            self.sent.clear()

    def install(self, monkeypatch) -> RoundTrips:
        original = AbstractConnection.send_packed_command
        counter = self

        def send_packed_command(connection, command, check_health=True):
            where = (getattr(connection, "host", None), getattr(connection, "port", None), connection.db)
            if where == counter.target:
                packed = command if isinstance(command, bytes | str) else b"".join(bytes(part) for part in command)
                names = command_names(packed.encode() if isinstance(packed, str) else packed)
                with counter._lock:
                    counter.sent.append(names)
            return original(connection, command, check_health)

        monkeypatch.setattr(AbstractConnection, "send_packed_command", send_packed_command)
        return self


def command_names(packed: bytes) -> tuple[str, ...]:
    """The names of the commands in a packed request (RESP arrays of bulk strings)."""
    names, at = [], 0
    while at < len(packed) and packed[at : at + 1] == b"*":
        end = packed.index(b"\r\n", at)
        count, at = int(packed[at + 1 : end]), end + 2
        for n in range(count):
            end = packed.index(b"\r\n", at)
            length = int(packed[at + 1 : end])
            if n == 0:
                names.append(packed[end + 2 : end + 2 + length].decode(errors="replace").upper())
            at = end + 2 + length + 2
    return tuple(names)
