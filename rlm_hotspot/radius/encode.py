"""Replies for rlm_python3: exact tuples of str, every value formatted and range-checked here.

radiusd silently drops an item that is not a tuple of str and silently mangles an invalid value
(Session-Timeout "abc" goes out as 0), so nothing leaves this module unchecked. What each NAS vendor
profile gets is decided here once.
"""

from __future__ import annotations

from datetime import UTC

from rlm_hotspot.services.access import Grant

Item = tuple[str, str] | tuple[str, str, str]

CLASS_PREFIX = "hs:"  # our Class values; the NAS echoes them in accounting
MAX_UINT32 = 2**32 - 1
MAX_UINT64 = 2**64 - 1
MAX_TEXT = 253


def reply_message(message: str) -> tuple[Item, ...]:
    """The reply of a refusal: only a human sentence (Access-Rejects carry nothing else)."""
    return (("Reply-Message", _text(message)),)


def session_class(token: str) -> str:
    return _text(CLASS_PREFIX + token)


def accept_reply(grant: Grant, token: str) -> tuple[Item, ...]:
    """The Access-Accept attributes: limits common to every NAS, then the vendor profile's."""
    items: list[Item] = [
        ("Session-Timeout", _uint32(max(1, min(grant.session_timeout, MAX_UINT32)))),
        ("Acct-Interim-Interval", _uint32(grant.interim_interval)),
        ("Class", session_class(token)),
    ]
    if grant.idle_timeout:
        items.append(("Idle-Timeout", _uint32(grant.idle_timeout)))
    profile = VENDOR_PROFILES.get(grant.nas_vendor or "generic")
    if profile is None:
        raise ValueError(f"unknown NAS vendor profile {grant.nas_vendor!r}")
    items.extend(profile(grant))
    return tuple(items)


def _mikrotik(grant: Grant) -> list[Item]:
    items: list[Item] = []
    if grant.data_cap is not None:
        cap = _enforceable_cap(grant.data_cap)
        items.append(("Mikrotik-Total-Limit", _uint32(cap & MAX_UINT32)))
        items.append(("Mikrotik-Total-Limit-Gigawords", _uint32(cap >> 32)))
    if grant.rate_up_kbps or grant.rate_down_kbps:
        # "rx/tx" from the router's side: rx is the client's upload; 0 = unlimited
        items.append(("Mikrotik-Rate-Limit", f"{_kbit(grant.rate_up_kbps)}/{_kbit(grant.rate_down_kbps)}"))
    return items


def _chilli(grant: Grant) -> list[Item]:
    items: list[Item] = []
    if grant.data_cap is not None:
        octets, gigawords = chilli_total_limit(_enforceable_cap(grant.data_cap))
        items.append(("ChilliSpot-Max-Total-Octets", _uint32(octets)))
        if gigawords:
            items.append(("ChilliSpot-Max-Total-Gigawords", _uint32(gigawords)))
    if grant.rate_up_kbps:
        items.append(("ChilliSpot-Bandwidth-Max-Up", _uint32(grant.rate_up_kbps)))  # kbit/s
    if grant.rate_down_kbps:
        items.append(("ChilliSpot-Bandwidth-Max-Down", _uint32(grant.rate_down_kbps)))
    return items


def chilli_total_limit(cap: int) -> tuple[int, int]:
    """(Max-Total-Octets, Max-Total-Gigawords) that never exceed `cap`, whether or not the NAS reads gigawords.

    Older CoovaChilli reads only the 32-bit octets; newer ones add gigawords << 32. Octets are capped at
    2^32 - 1, and gigawords count only what lies above that, so both readings stay within the cap.
    """
    if cap <= MAX_UINT32:
        return cap, 0
    return MAX_UINT32, (cap - MAX_UINT32) >> 32


def _wispr(grant: Grant) -> list[Item]:
    items: list[Item] = []
    if grant.rate_up_kbps:
        items.append(("WISPr-Bandwidth-Max-Up", _uint32(grant.rate_up_kbps * 1000)))  # bit/s
    if grant.rate_down_kbps:
        items.append(("WISPr-Bandwidth-Max-Down", _uint32(grant.rate_down_kbps * 1000)))
    if grant.deadline is not None:
        deadline = grant.deadline.astimezone(UTC).replace(microsecond=0)
        items.append(("WISPr-Session-Terminate-Time", deadline.isoformat()))  # 2026-11-25T12:00:00+00:00
    return items


def _generic(grant: Grant) -> list[Item]:
    return []


VENDOR_PROFILES = {"mikrotik": _mikrotik, "chilli": _chilli, "wispr": _wispr, "generic": _generic}


def _enforceable_cap(cap: int) -> int:
    """A byte cap the NAS can enforce: 0 means "unlimited" to MikroTik and CoovaChilli, so send 1."""
    return min(max(cap, 1), MAX_UINT64)


def _kbit(kbps: int | None) -> str:
    return f"{kbps}k" if kbps else "0"


def _uint32(value: int) -> str:
    if not 0 <= value <= MAX_UINT32:
        raise ValueError(f"{value} does not fit a 32-bit RADIUS integer")
    return str(value)


def _text(value: str) -> str:
    """At most 253 octets, cut on a character boundary."""
    return value.encode()[:MAX_TEXT].decode(errors="ignore")
