"""Free ("walled garden") networks: destinations a guest may reach without paying.

Admins type the networks as CIDR text; a typo must be a clear error at configuration time, not a
silently ignored entry, so parsing is strict (host bits set in "10.0.0.1/8" is reported).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(items: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Parse CIDR strings ("10.0.0.0/8", "2001:db8::/32", "192.0.2.7"); blank items are skipped."""
    networks: list[IPNetwork] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"bad network {item!r}: expected text such as '10.0.0.0/8'")
        text = item.strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=True))
        except ValueError as exc:
            raise ValueError(f"bad network {text!r}: {exc}") from exc
    return tuple(networks)
