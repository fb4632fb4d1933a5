"""Test helpers for webhooks (import them; fixtures are in conftest.py): a local receiver (plain or TLS), one that
trickles its answer, a self-signed certificate, a resolver that answers what a test says, the partner-side
signature check as README documents it, and the cursors the change feed lists."""

import hashlib
import hmac
import json
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from areas.changes import changes_since
from testing.feed import feed_settled


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)


class Receiver:
    """An HTTP server on 127.0.0.1 (or `host`; an ephemeral port unless `port`), in a thread, that records every
    request and the most it was answering at once. It answers with the given statuses in turn, then `then`; `delay`
    seconds before answering, and, given a `hold` (threading.Event), not before it is set. `answered` counts the
    answers sent. With `tls` (a Certificate) it speaks HTTPS."""

    def __init__(
        self,
        statuses=(),
        *,
        then: int = 200,
        delay: float = 0.0,
        headers: dict | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: "Certificate | None" = None,
        hold: threading.Event | None = None,
    ):
        self.requests: list[Received] = []
        self.hold, self.answered = hold, 0
        self.statuses = list(statuses)
        self.then, self.delay, self.headers = then, delay, headers or {}
        self.in_flight = self.most_in_flight = 0
        self._count = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                with receiver._count:
                    receiver.in_flight += 1
                    receiver.most_in_flight = max(receiver.most_in_flight, receiver.in_flight)
                try:
                    self.answer()
                finally:
                    with receiver._count:
                        receiver.in_flight -= 1

            def answer(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append(Received(self.path, dict(self.headers.items()), body))
                status = receiver.statuses.pop(0) if receiver.statuses else receiver.then
                if receiver.hold is not None:
                    receiver.hold.wait(60)
                time.sleep(receiver.delay)
                answer = b"" if 200 <= status < 300 else b"receiver says no"
                self.send_response(status)
                for name, value in receiver.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
                with receiver._count:
                    receiver.answered += 1

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_port
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls.cert, tls.key)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://{host}:{self.port}/hooks/areas?source=test"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def changes(self) -> list[list[str]]:
        """The change cursors of every request, request by request."""
        return [[change["cursor"] for change in r.json["changes"]] for r in self.requests]


def signature_valid(secret: str, request: Received, tolerance: int = 300) -> bool:
    """What a partner does with a request (README): recent timestamp, HMAC over "<timestamp>.<body>"."""
    timestamp = request.headers["X-Webhook-Timestamp"]
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
    recent = abs(time.time() - int(timestamp)) <= tolerance
    return recent and hmac.compare_digest(f"sha256={expected}", request.headers["X-Webhook-Signature"])


def feed_cursors(since: tuple[int, int]) -> list[str]:
    """Every change cursor the feed lists after `since`."""
    feed_settled()
    return [change["cursor"] for change in changes_since(since, limit=10_000)["changes"]]


class TrickleReceiver:
    """A receiver that reads the request, then sends its answer one byte a second, for as long as the client
    listens: the status line and headers (`where="head"`) or, after complete headers of a 200, the body."""

    def __init__(self, *, where: str = "head"):
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
        self.before, self.trickled = (
            (b"", head + b"X-Pad: " + b"x" * 1000)
            if where == "head"
            else (
                head + b"Content-Length: 100000\r\n\r\n",
                b"y" * 100_000,
            )
        )
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/hooks"
        self.requests = 0

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            try:
                conn.recv(65536)
                self.requests += 1
                conn.sendall(self.before)
                for i in range(len(self.trickled)):
                    conn.sendall(self.trickled[i : i + 1])
                    time.sleep(1.0)
            except OSError:
                return  # the client hung up

    def __enter__(self):
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.listener.close()


@dataclass(frozen=True)
class Certificate:
    cert: str
    key: str


def self_signed_certificate(directory: Path, *names: str) -> Certificate:
    """A self-signed certificate (its own CA) for these DNS names, made with the openssl command."""
    cert, key = directory / "receiver.crt", directory / "receiver.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", f"/CN={names[0]}",
         "-addext", "subjectAltName=" + ",".join(f"DNS:{name}" for name in names)],
        check=True, capture_output=True,
    )  # fmt: skip
    return Certificate(str(cert), str(key))


class FakeDNS:
    """socket.getaddrinfo for the given names (each a list of answers, one per lookup, the last one repeated); any
    other name is looked up for real. `lookups` counts the lookups of each faked name (as they start), `answered`
    the faked lookups that have returned; `delay` makes them slow."""

    def __init__(self, monkeypatch, answers: dict[str, list[str]], *, delay: float = 0.0):
        self.answers, self.delay = answers, delay
        self.lookups: dict[str, int] = dict.fromkeys(answers, 0)
        self.answered = 0
        real = socket.getaddrinfo

        def getaddrinfo(host, port, *args, **kwargs):
            if host not in self.answers:
                return real(host, port, *args, **kwargs)
            n = self.lookups[host]
            self.lookups[host] += 1
            time.sleep(self.delay)
            self.answered += 1
            address = self.answers[host][min(n, len(self.answers[host]) - 1)]
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            return [(family, socket.SOCK_STREAM, 6, "", (address, port))]

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
