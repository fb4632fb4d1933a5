"""Client addresses matched against configured networks (CIDRs): who may reach the admin, or see health figures."""

import ipaddress

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(cidrs: list[str]) -> list[Network]:
    return [ipaddress.ip_network(cidr, strict=False) for cidr in cidrs]


def address_in(address: str, networks: list[Network]) -> bool:
    """Whether a client address (accounts.security.client_address) lies in one of the networks; an empty or
    malformed address lies in none."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)
