"""Who a login comes from: one name for a guest's device, the same on the RADIUS side and the portal's.

Wrong PINs and unknown card numbers count per client, and both sides must count the same client under
the same name, or a device locked out by one is let in by the other. The name is the device's MAC when
it is known — RADIUS has it as Calling-Station-Id, the portal from the NAS's redirect (CoovaChilli
`mac=`, MikroTik `$(mac)`) or from openNDS — in one spelling (`aa:bb:cc:dd:ee:ff`, whatever separators
the NAS used), else the client's IP address. sql/014 spells a session's client the same way
(`client_identity`), to recognise the device that holds a card.
"""

from __future__ import annotations

import re

_MAC_DIGITS = re.compile(r"[0-9a-f]{12}")
_MAC_SEPARATORS = re.compile(r"[-:.]")


def canonical_mac(text: str | None) -> str | None:
    """`text` as `aa:bb:cc:dd:ee:ff` if it is a MAC address (`AA-BB-..`, `aa:bb:..`, `aabb.ccdd.eeff`,
    bare hex), else None."""
    if not text:
        return None
    digits = _MAC_SEPARATORS.sub("", text.strip().lower())
    if not _MAC_DIGITS.fullmatch(digits):
        return None
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def client_identity(station: str | None, ip: str | None) -> str | None:
    """The lockout's name for a client: the MAC `station` names, else the IP, else `station` as sent
    (a NAS whose Calling-Station-Id is neither)."""
    return canonical_mac(station) or ip or (station.strip()[:64] if station and station.strip() else None)
