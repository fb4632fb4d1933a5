"""Where a webhook may point (no Django): SSRF guards, applied twice.

- When a URL is registered (`check_url`): https only, no credentials in it, and no IP literal or name of this
  machine or a private network. Plain http is allowed for 127.0.0.1/localhost/[::1] only when local receivers are
  allowed (development, tests).
- Every time it is called (`resolve`): the name is resolved (within a time limit) and every address it resolves to
  must be public (loopback too when local receivers are allowed); the request then goes to that checked address,
  so a DNS answer that changes between the check and the connection (DNS rebinding) cannot send it inside.

IPv6 forms that carry an IPv4 address (IPv4-mapped and -compatible, NAT64, 6to4, Teredo) are judged by the IPv4
address they carry, so `64:ff9b::10.0.0.1` is as private as `10.0.0.1`.

What a partner is told never names the address a refused host resolved to (that would map our private network
for them); `UnsafeTarget.detail` keeps it for the server's log.
"""

import ipaddress
import re
import socket
import threading
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2000

HTTPS_REQUIRED = "Must be an https:// URL."
LOCAL_HTTP_ONLY = "Plain http:// is only allowed for 127.0.0.1, [::1] or localhost, and only in development."
NO_CREDENTIALS = "Must not carry a user name or password: requests are authenticated by their signature."
NOT_PUBLIC = "Must point to a public address, not to this machine or a private network."
BAD_URL = "Must be an absolute http(s) URL with a host name."
URL_TOO_LONG = f"At most {MAX_URL_LENGTH} characters."
RESOLVES_NOT_ALLOWED = (
    "{host} resolves to an address webhooks may not be sent to (private, loopback, link-local or reserved): "
    "it must point to a public address."
)
RESOLVES_TO_NOTHING = "{host} resolves to no address."
NOT_RESOLVED = "Could not resolve {host}: {reason}"
NOT_RESOLVED_IN_TIME = "Could not resolve {host} within {seconds:g} s."

LOCAL_NAMES = ("localhost", "localhost.localdomain")
# Forms that socket.inet_aton reads as IPv4 although they do not look like one: 2130706433, 0x7f.1, 127.1.
_LOOSE_IPV4 = re.compile(r"[0-9a-fA-FxX.]+")

IPv4Address, IPv6Address, IPv6Network = ipaddress.IPv4Address, ipaddress.IPv6Address, ipaddress.IPv6Network
# IPv6 prefixes that carry an IPv4 address in their last 32 bits: IPv4-compatible (RFC 4291), IPv4-translated
# (SIIT, RFC 2765), NAT64's well-known prefix (RFC 6052).
_IPV4_COMPATIBLE = IPv6Network("::/96")
_LAST_32_BITS = (IPv6Network("::ffff:0:0:0/96"), IPv6Network("64:ff9b::/96"))
# RFC 8215: NAT64 for a local network (the IPv4 address may sit anywhere in it): never a public destination, although
# Python's ipaddress before 3.12.4/3.13 calls it global.
_NAT64_LOCAL_USE = IPv6Network("64:ff9b:1::/48")


class UnsafeTarget(ValueError):
    """A URL or address a webhook must not be sent to (or that could not be looked up). Its message is for the
    partner; `detail` (for the server's log) may name the address."""

    def __init__(self, message: str, *, detail: str = ""):
        super().__init__(message)
        self.detail = detail or message


class ResolveTimedOut(UnsafeTarget):
    """The name lookup did not finish within its time limit."""


def _host_address(host: str) -> IPv4Address | IPv6Address | None:
    """The address when the host is an IP literal (in any spelling the resolver would accept), else None."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _LOOSE_IPV4.fullmatch(host) and any(c.isdigit() for c in host):
        try:
            return IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def embedded_ipv4(address: IPv6Address) -> list[IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (and would reach through a translator or tunnel), if any."""
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    if address.sixtofour is not None:
        return [address.sixtofour]
    if address.teredo is not None:
        return list(address.teredo)  # the Teredo server and the client's (public, NAT) address
    if any(address in prefix for prefix in _LAST_32_BITS) or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return [IPv4Address(int(address) & 0xFFFFFFFF)]  # (:: and ::1 are IPv6's own)
    return []


def address_allowed(address: IPv4Address | IPv6Address, *, allow_local: bool) -> bool:
    if isinstance(address, IPv6Address):
        if address in _NAT64_LOCAL_USE:
            return False
        carried = embedded_ipv4(address)
        if carried:
            # Only the IPv4-mapped form is this machine when it carries 127.x; through a translator or a tunnel
            # a loopback address is someone else's.
            local = allow_local and address.ipv4_mapped is not None
            return all(address_allowed(ipv4, allow_local=local) for ipv4 in carried)
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


def resolve(host: str, port: int, *, allow_local: bool, timeout: float) -> str:
    """One address to connect to for this host, every address of which is allowed (else UnsafeTarget), looked up
    within `timeout` seconds."""
    infos = _getaddrinfo(host, port, timeout)
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    if not addresses:
        raise UnsafeTarget(RESOLVES_TO_NOTHING.format(host=host))
    refused = [a for a in addresses if not address_allowed(a, allow_local=allow_local)]
    if refused:
        raise UnsafeTarget(
            RESOLVES_NOT_ALLOWED.format(host=host), detail=f"{host} resolves to {', '.join(map(str, refused))}"
        )
    return str(addresses[0])


def _getaddrinfo(host: str, port: int, timeout: float) -> list:
    """socket.getaddrinfo, given up after `timeout` seconds: the C resolver has no time limit of its own (it follows
    resolv.conf, several times 5 s), so it runs in a daemon thread that is left to finish by itself."""
    outcome: dict = {}

    def lookup() -> None:
        try:
            outcome["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=lookup, name=f"webhook-resolve-{host}"[:60], daemon=True)
    thread.start()
    thread.join(max(timeout, 0.0))
    if thread.is_alive():
        raise ResolveTimedOut(NOT_RESOLVED_IN_TIME.format(host=host, seconds=timeout))
    if "error" in outcome:
        exc = outcome["error"]
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UnsafeTarget(NOT_RESOLVED.format(host=host, reason=reason)) from exc
    return outcome["infos"]
