"""Where a webhook may point (no Django): SSRF guards, applied twice.

- When a URL is registered (`check_url`): https only, no credentials in it, and no IP literal or name of this
  machine or a private network. Plain http is allowed for 127.0.0.1/localhost/[::1] only when local receivers are
  allowed (development, tests).
- Every time it is called (`resolve`): the name is resolved and every address it resolves to must be public
  (loopback too when local receivers are allowed); the request then goes to that checked address, so a DNS answer
  that changes between the check and the connection (DNS rebinding) cannot send it inside.
"""

import ipaddress
import re
import socket
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2000

HTTPS_REQUIRED = "Must be an https:// URL."
LOCAL_HTTP_ONLY = "Plain http:// is only allowed for 127.0.0.1, [::1] or localhost, and only in development."
NO_CREDENTIALS = "Must not carry a user name or password: requests are authenticated by their signature."
NOT_PUBLIC = "Must point to a public address, not to this machine or a private network."
BAD_URL = "Must be an absolute http(s) URL with a host name."
URL_TOO_LONG = f"At most {MAX_URL_LENGTH} characters."

LOCAL_NAMES = ("localhost", "localhost.localdomain")
# Forms that socket.inet_aton reads as IPv4 although they do not look like one: 2130706433, 0x7f.1, 127.1.
_LOOSE_IPV4 = re.compile(r"[0-9a-fA-FxX.]+")


class UnsafeTarget(ValueError):
    """A URL or address a webhook must not be sent to; the message says why."""


def _host_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address when the host is an IP literal (in any spelling the resolver would accept), else None."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _LOOSE_IPV4.fullmatch(host) and any(c.isdigit() for c in host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def address_allowed(address: ipaddress.IPv4Address | ipaddress.IPv6Address, *, allow_local: bool) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return allow_local
    return address.is_global and not address.is_multicast


def check_url(url: str, *, allow_local: bool) -> None:
    """Raise UnsafeTarget unless a webhook may be registered for this URL."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeTarget(URL_TOO_LONG)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port out of range)
    except ValueError as exc:
        raise UnsafeTarget(BAD_URL) from exc
    host = (parts.hostname or "").rstrip(".").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise UnsafeTarget(BAD_URL)
    if parts.username is not None or parts.password is not None:
        raise UnsafeTarget(NO_CREDENTIALS)
    address = _host_address(host)
    local = host in LOCAL_NAMES or host.endswith(".localhost") or (address is not None and address.is_loopback)
    if local and not allow_local:
        raise UnsafeTarget(NOT_PUBLIC)
    if address is not None and not address_allowed(address, allow_local=allow_local):
        raise UnsafeTarget(NOT_PUBLIC)
    if parts.scheme == "http" and not local:
        raise UnsafeTarget(HTTPS_REQUIRED if not allow_local else LOCAL_HTTP_ONLY)


def resolve(host: str, port: int, *, allow_local: bool) -> str:
    """One address to connect to for this host, every address of which is allowed (else UnsafeTarget)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeTarget(f"Could not resolve {host}: {exc}") from exc
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    refused = [a for a in addresses if not address_allowed(a, allow_local=allow_local)]
    if not addresses or refused:
        raise UnsafeTarget(f"{host} resolves to {refused[0] if refused else 'nothing'}: {NOT_PUBLIC}")
    return str(addresses[0])
