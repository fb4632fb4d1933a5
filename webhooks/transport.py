"""One HTTP POST to a webhook's URL (urllib3, no Django): to the address `targets.resolve` checked, short timeouts,
no redirects followed, no retries here (the task retries with backoff), and at most a little of the answer read."""

import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3
from urllib3.exceptions import HTTPError

from webhooks import targets

# What is kept of a receiver's answer for the delivery log: enough to show an error message.
ANSWER_BYTES = 500


@dataclass(frozen=True, slots=True)
class PostResult:
    status_code: int | None  # None: no HTTP answer (refused address, DNS, connection, timeout, TLS)
    error: str  # empty on a 2xx
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def post(
    url: str, body: bytes, headers: dict[str, str], *, allow_local: bool, connect_timeout: float, read_timeout: float
) -> PostResult:
    started = time.monotonic()

    def result(status: int | None, error: str) -> PostResult:
        return PostResult(status, error, round((time.monotonic() - started) * 1000))

    parts = urlsplit(url)
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    host = parts.hostname or ""
    try:
        address = targets.resolve(host, port, allow_local=allow_local)
    except targets.UnsafeTarget as exc:
        return result(None, str(exc))
    timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
    # Connect to the checked address; TLS still verifies the certificate against the URL's host name.
    pool_options = {"server_hostname": host, "assert_hostname": host, "cert_reqs": "CERT_REQUIRED"} if https else {}
    pool_class = urllib3.HTTPSConnectionPool if https else urllib3.HTTPConnectionPool
    pool = pool_class(address, port, timeout=timeout, retries=False, maxsize=1, **pool_options)
    default_port = port == (443 if https else 80)
    host_header = parts.netloc.rpartition("@")[2] if not default_port else (f"[{host}]" if ":" in host else host)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        response = pool.urlopen(
            "POST",
            target,
            body=body,
            headers={**headers, "Host": host_header},
            redirect=False,
            retries=False,
            preload_content=False,
            assert_same_host=False,
        )
        try:
            answer = response.read(ANSWER_BYTES, decode_content=False)
        finally:
            response.release_conn()
    except (HTTPError, OSError) as exc:
        return result(None, f"{type(exc).__name__}: {exc}"[:ANSWER_BYTES])
    finally:
        pool.close()
    if 200 <= response.status < 300:
        return result(response.status, "")
    text = answer.decode("utf-8", "replace").strip()
    error = f"HTTP {response.status}"
    if 300 <= response.status < 400:
        error += f" (redirects are not followed: {response.headers.get('Location', '')})"
    return result(response.status, error + (f": {text}" if text else ""))
