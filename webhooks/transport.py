"""One HTTP POST to a webhook's URL (stdlib only, no Django), bounded by one deadline for the whole attempt.

- The host is resolved once (`targets.resolve`, which refuses private addresses) and the connection goes to that
  checked address: there is no second lookup a rebinding DNS server could answer differently. TLS still checks the
  certificate against the URL's host name (sent as SNI).
- Every step (name lookup, connect, TLS handshake, sending, each read of the answer) is given only what is left of
  the deadline, so a receiver that trickles a byte a second is cut off at the deadline instead of holding a worker
  for as long as it likes (a per-read timeout would never fire on it).
- No redirects are followed, no retries here (the task retries with backoff), at most a little of the answer read.
- Errors say what went wrong in words a partner can act on, never the address a name resolved to.
"""

import functools
import http.client
import io
import logging
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from webhooks import targets

log = logging.getLogger(__name__)

# What is kept of a receiver's answer for the delivery log: enough to show an error message.
ANSWER_BYTES = 500

DEADLINE_PASSED = "No complete answer within the {seconds:g} s limit (gave up while {step})."
CONNECT_TIMED_OUT = "Could not connect within {seconds:g} s."
CONNECTION_REFUSED = "Connection refused."
TLS_UNTRUSTED = "TLS: the certificate is not trusted for this host ({reason})."
TLS_FAILED = "TLS: {reason}"
CLOSED_WITHOUT_ANSWER = "The receiver closed the connection without answering."
BAD_ANSWER = "The answer is not valid HTTP ({reason})."


@dataclass(frozen=True, slots=True)
class PostResult:
    status_code: int | None  # None: no HTTP answer (refused address, DNS, connection, deadline, TLS)
    error: str  # empty on a 2xx
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class _DeadlinePassed(Exception):
    pass


class _Clock:
    def __init__(self, seconds: float):
        self.ends = time.monotonic() + seconds

    def left(self) -> float:
        """Seconds left; _DeadlinePassed when none are."""
        remaining = self.ends - time.monotonic()
        if remaining <= 0:
            raise _DeadlinePassed
        return remaining


class _DeadlineSocket:
    """What http.client sends and reads through: each operation on the socket may take only what is left of the
    deadline. Closing is left to `post` (http.client closes its socket while the answer may still be read)."""

    def __init__(self, sock: socket.socket, clock: _Clock):
        self.sock, self.clock = sock, clock

    def sendall(self, data) -> None:
        self.sock.settimeout(self.clock.left())  # for sendall, the limit of the whole call
        self.sock.sendall(data)

    def makefile(self, mode: str = "rb", *args, **kwargs):
        return io.BufferedReader(_DeadlineReader(self))

    def close(self) -> None:
        pass


class _DeadlineReader(io.RawIOBase):
    def __init__(self, owner: _DeadlineSocket):
        self.owner = owner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        self.owner.sock.settimeout(self.owner.clock.left())
        return self.owner.sock.recv_into(buffer)


@functools.lru_cache(maxsize=4)
def _tls_context(ca_file: str | None) -> ssl.SSLContext:
    # The system's trust store, or (tests) only the given CA file; certificate and host name always checked.
    return ssl.create_default_context(cafile=ca_file)


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    allow_local: bool,
    deadline: float,
    connect_timeout: float,
    ca_file: str | None = None,
) -> PostResult:
    """POST `body` to `url`; whatever happens, back within `deadline` seconds (plus a few milliseconds)."""
    started = time.monotonic()
    clock = _Clock(deadline)

    def result(status: int | None, error: str) -> PostResult:
        return PostResult(status, error, round((time.monotonic() - started) * 1000))

    parts = urlsplit(url)
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    host = parts.hostname or ""
    try:
        address = targets.resolve(host, port, allow_local=allow_local, timeout=clock.left())
    except (targets.ResolveTimedOut, _DeadlinePassed):
        return result(None, DEADLINE_PASSED.format(seconds=deadline, step="resolving the host name"))
    except targets.UnsafeTarget as exc:
        log.warning("webhook to %s not sent: %s", url, exc.detail)  # the address: for us, not for the partner
        return result(None, str(exc))
    step = "connecting"
    sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM)
    try:
        connect_limit = min(connect_timeout, clock.left())
        sock.settimeout(connect_limit)
        try:
            sock.connect((address, port))  # the checked address: no second lookup
        except TimeoutError:
            if connect_limit < connect_timeout:
                raise _DeadlinePassed from None
            return result(None, CONNECT_TIMED_OUT.format(seconds=connect_timeout))
        if https:
            step = "negotiating TLS"
            sock = _tls_context(ca_file).wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
            sock.settimeout(clock.left())  # the limit of the whole handshake
            sock.do_handshake()
        step = "sending the request"
        connection = http.client.HTTPConnection(host, port)
        connection.sock = _DeadlineSocket(sock, clock)
        default_port = port == (443 if https else 80)
        host_header = parts.netloc.rpartition("@")[2] if not default_port else (f"[{host}]" if ":" in host else host)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.request("POST", target, body=body, headers={**headers, "Host": host_header, "Connection": "close"})
        step = "waiting for the answer"
        response = connection.getresponse()
        step = "reading the answer"
        answer = response.read(ANSWER_BYTES)
    except (_DeadlinePassed, TimeoutError):
        return result(None, DEADLINE_PASSED.format(seconds=deadline, step=step))
    except ConnectionRefusedError:
        return result(None, CONNECTION_REFUSED)
    except ssl.SSLCertVerificationError as exc:
        return result(None, TLS_UNTRUSTED.format(reason=exc.verify_message or exc.reason))
    except ssl.SSLError as exc:
        return result(None, TLS_FAILED.format(reason=exc.reason or type(exc).__name__))
    except http.client.RemoteDisconnected:
        return result(None, CLOSED_WITHOUT_ANSWER)
    except http.client.HTTPException as exc:
        return result(None, BAD_ANSWER.format(reason=type(exc).__name__))
    except OSError as exc:
        return result(None, f"{type(exc).__name__}: {exc.strerror or exc}")
    finally:
        sock.close()
    if 200 <= response.status < 300:
        return result(response.status, "")
    text = answer.decode("utf-8", "replace").strip()
    error = f"HTTP {response.status}"
    if 300 <= response.status < 400:
        error += f" (redirects are not followed: {response.getheader('Location', '')})"
    return result(response.status, error + (f": {text}" if text else ""))
