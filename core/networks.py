"""Who is calling, from where: the client's address (as every limit counts it), matched against configured
networks (CIDRs): who may reach the admin, or see health figures."""

import ipaddress

from rest_framework.throttling import BaseThrottle

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def client_address(request) -> str:
    """The client's address: REMOTE_ADDR, or with NUM_PROXIES trusted proxies in front (the load balancer) the
    address they saw. X-Forwarded-For entries added by the client itself are never trusted."""
    if request is None:  # authenticate() called without a request
        return ""
    # The same identity as DRF's throttles, so rate limits and failed-login limits count the same client.
    return BaseThrottle().get_ident(getattr(request, "_request", request)) or ""


def parse_networks(cidrs: list[str]) -> list[Network]:
    return [ipaddress.ip_network(cidr, strict=False) for cidr in cidrs]


def address_in(address: str, networks: list[Network]) -> bool:
    """Whether a client address (client_address) lies in one of the networks; an empty or
    malformed address lies in none."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)
