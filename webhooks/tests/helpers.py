"""Test helpers for webhooks (import them; fixtures are in conftest.py): a local receiver, the partner-side signature
check as README documents it, and waiting for the change feed to list what was just committed."""

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from areas.changes import changes_since
from areas.tests.feed import feed_settled


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)


class Receiver:
    """An HTTP server on 127.0.0.1 (an ephemeral port), in a thread, that records every request. It answers with
    the given statuses in turn, then `then`; `delay` seconds before answering."""

    def __init__(self, statuses=(), *, then: int = 200, delay: float = 0.0, headers: dict | None = None):
        self.requests: list[Received] = []
        self.statuses = list(statuses)
        self.then, self.delay, self.headers = then, delay, headers or {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append(Received(self.path, dict(self.headers.items()), body))
                status = receiver.statuses.pop(0) if receiver.statuses else receiver.then
                time.sleep(receiver.delay)
                answer = b"" if 200 <= status < 300 else b"receiver says no"
                self.send_response(status)
                for name, value in receiver.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/areas?source=test"

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
