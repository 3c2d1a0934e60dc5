"""The NAS's side of the UAM handoff (portal/uam.py is the portal's), as CoovaChilli does it: what the tests
play the NAS with. Written from CoovaChilli's behaviour, not from the portal's code, so that the portal's
checks are tested against an independent signer and decoder."""

from __future__ import annotations

import hashlib


def sign_chilli_url(url: str, uamsecret: str) -> str:
    """What CoovaChilli appends to every redirect to the portal: md = upper-case hex MD5(url + uamsecret)."""
    md = hashlib.md5((url + uamsecret).encode(), usedforsecurity=False).hexdigest().upper()
    return f"{url}&md={md}"


def chilli_pap_decode(password_hex: str, key: bytes) -> str:
    """How CoovaChilli reads /logon's PAP password: each byte XOR the key, cycled (its own inverse)."""
    return bytes(byte ^ key[i % len(key)] for i, byte in enumerate(bytes.fromhex(password_hex))).decode()
