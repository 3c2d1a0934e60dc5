"""Who pays for a client IP's bytes in one bin: the attribution rule of NetFlow billing.

Bin [t, t + bin) of an IP goes to the session holding that IP which **started before t + bin** and
**stopped no earlier than t - grace**: a guest's flows reported late, after the logout, still reach
their own session. If several sessions match, **the latest start wins**: a new guest who gets a
recycled IP pays from their own start on, never for the previous holder's traffic. IP reuse within one
bin cannot be split: the new holder gets that bin.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime, timedelta
from typing import NamedTuple


class Claim(NamedTuple):
    """A session's hold on an IP: from its start until its stop (None: still open)."""

    started_at: datetime
    stopped_at: datetime | None
    session_id: int


def latest_first(claims: Iterable[Claim]) -> list[Claim]:
    """Claims in the order ``holder`` expects: latest start first, ties to the newest session."""
    return sorted(claims, key=lambda claim: (claim.started_at, claim.session_id), reverse=True)


class BinWindow(NamedTuple):
    """What a session must overlap to hold an IP during one bin: started before ``bin_end``, stopped (if it
    did) no earlier than ``earliest_stop``. Computed once per bin, used for every IP of the bin."""

    bin_end: datetime
    earliest_stop: datetime

    @classmethod
    def of(cls, bin_start: datetime, bin_length: timedelta, grace: timedelta) -> BinWindow:
        return cls(bin_start + bin_length, bin_start - grace)

    @classmethod
    def any_of(cls, windows: Collection[BinWindow]) -> BinWindow:
        """What a session must overlap to hold an IP during at least one of ``windows``."""
        return cls(max(window.bin_end for window in windows), min(window.earliest_stop for window in windows))

    @classmethod
    def throughout(cls, windows: Collection[BinWindow]) -> BinWindow:
        """What a session must overlap to hold an IP during every one of ``windows``."""
        return cls(min(window.bin_end for window in windows), max(window.earliest_stop for window in windows))


def holder(claims: Sequence[Claim], window: BinWindow) -> Claim | None:
    """The claim that gets the IP's bytes of the bin, from the IP's claims ordered ``latest_first``."""
    for claim in claims:
        if claim.started_at < window.bin_end and (claim.stopped_at is None or claim.stopped_at >= window.earliest_stop):
            return claim
    return None


def lone_holder(claims: Sequence[Claim], throughout: BinWindow) -> Claim | None:
    """The holder of the IP in every bin, decided once, when the IP has a single claim that holds it
    ``throughout`` the bins (the common case: no other session can take a bin from it). None: ask
    ``holder`` bin by bin."""
    return holder(claims, throughout) if len(claims) == 1 else None
