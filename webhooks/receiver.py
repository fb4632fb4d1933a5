"""A webhook receiver for trying webhooks on your own machine (no Django; Python's standard library only):

    python3 -m webhooks.receiver --port 8765 --secret "$WEBHOOK_SECRET"

It listens on 127.0.0.1, prints one line per request it is sent (event, delivery, whether the signature is right,
the changes and the cursor) and answers 200, or 401 to a request whose signature is wrong (so the sender retries
it, as a real receiver would). `--status 503` answers that to everything instead, to watch the retries. Register
`http://127.0.0.1:8765/` as the webhook's URL; the service allows such local URLs only with WEBHOOKS_ALLOW_LOCAL
(on under `make run`, refused by the production settings).

It is also the shape of a real receiver: check the signature on the raw body before parsing it, refuse an old
timestamp, and remember the last cursor applied so a repeated request changes nothing.
"""

import argparse
import json
import sys
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TextIO

from webhooks.signing import verify

MAX_BODY_BYTES = 8 * 1024 * 1024


def cursor_key(cursor: str) -> tuple[int, int]:
    """A cursor (`<xid>-<id>`) as the pair of numbers it is compared as; (-1, -1) for none."""
    xid, _, change = cursor.partition("-")
    return (int(xid), int(change)) if xid.isdigit() and change.isdigit() else (-1, -1)


class WebhookReceiver(ThreadingHTTPServer):
    """The server; `secret` may be set (or changed) while it runs. `lines` keeps what was printed."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], *, secret: str = "", status: int = 200, out: TextIO = sys.stdout):
        super().__init__(address, _Handler)
        self.secret, self.status, self.out = secret, status, out
        self.lines: list[str] = []
        self.applied_cursor = (-1, -1)  # the newest change applied: a repeated request is not applied twice
        self._lock = threading.Lock()

    def receive(self, headers, body: bytes) -> tuple[int, str]:
        """The status to answer and the line to print for one request."""
        event = headers.get("X-Webhook-Event", "?")
        delivery = headers.get("X-Webhook-Delivery", "?")[:8]
        if not self.secret:
            checked = "signature not checked (no --secret)"
        elif verify(
            self.secret,
            timestamp=headers.get("X-Webhook-Timestamp", ""),
            body=body,
            signature=headers.get("X-Webhook-Signature", ""),
        ):
            checked = "signature ok"
        else:
            return 401, f"{event} delivery {delivery}: signature WRONG or timestamp too old -> 401"
        try:
            payload = json.loads(body)
        except ValueError:
            return 400, f"{event} delivery {delivery}: {checked}, body is not JSON -> 400"
        status = self.status
        with self._lock:
            changes = payload.get("changes") or []
            fresh = [change for change in changes if cursor_key(change.get("cursor", "")) > self.applied_cursor]
            if 200 <= status < 300 and fresh:
                self.applied_cursor = cursor_key(fresh[-1]["cursor"])
        summary = ""
        if changes:
            repeated = f" ({len(changes) - len(fresh)} seen before)" if len(fresh) < len(changes) else ""
            summary = f", {len(changes)} change(s){repeated} up to cursor {payload.get('cursor', '?')}"
            summary += "".join(
                f"\n    {change.get('kind')} area {change.get('area')} of provider {change.get('provider')}"
                + (f": {', '.join(change['fields'])}" if change.get("fields") else "")
                for change in fresh
            )
        return status, f"{event} delivery {delivery}: {checked}{summary} -> {status}"

    def say(self, line: str) -> None:
        line = f"{datetime.now():%H:%M:%S}  {line}"
        with self._lock:
            self.lines.append(line)
        print(line, file=self.out, flush=True)


class _Handler(BaseHTTPRequestHandler):
    server: WebhookReceiver

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 <= length <= MAX_BODY_BYTES:
            self._answer(413)
            return
        status, line = self.server.receive(self.headers, self.rfile.read(length))
        self.server.say(line)
        self._answer(status)

    def _answer(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):  # one line per request is printed by receive() instead
        pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python3 -m webhooks.receiver", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--secret", default="", help="the webhook's secret, to check signatures")
    parser.add_argument("--status", type=int, default=200, help="answer this to every correctly signed request")
    options = parser.parse_args(argv)
    server = WebhookReceiver((options.host, options.port), secret=options.secret, status=options.status)
    print(f"Receiving webhooks at http://{options.host}:{server.server_port}/ (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
