"""What a NAS's counters may plausibly say, and whether a packet belongs to the session it was matched to.

A billing system is trusted only if no packet can move money it should not. Two pure rules:

* **Bounds.** A session's online time cannot run ahead of the wall clock since it started, and its bytes
  cannot grow faster than the hotspot's line rate since the previous counters. An increment beyond
  them is *held* (quarantined with its reason), never billed silently. The NAS's
  own counter position is kept apart from what was billed, so that after a jump the NAS's next honest
  increments are billed from where it now counts, and a jump is held once, not again on every packet.
* **Belonging.** A packet matched by NAS + Acct-Session-Id alone may be another guest's (an id reused by
  another card) or a new session of the same card (the NAS rebooted and numbers sessions from the start
  again). Its Acct-Session-Time tells when *it* started: a start later than the matched session's is
  another session.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

MAX_BIGINT = 2**63 - 1  # what a PostgreSQL BIGINT column (and so a session counter) holds
CLOCK_SLACK_S = 10  # time a NAS may count ahead of our clock (whole-second Acct-Delay-Time, rounding)
RESTART_TOLERANCE_S = 60  # a packet that says its session started later than this after ours is another


class HoldReason(StrEnum):
    """Why usage was not billed."""

    TIME_BEYOND_CLOCK = "time-beyond-clock"
    BYTES_BEYOND_LINE_RATE = "bytes-beyond-line-rate"
    COUNTER_OUT_OF_RANGE = "counter-out-of-range"


class Quantity(StrEnum):
    SECONDS = "seconds"
    UPLOAD = "upload"  # from the guest: the NAS's input octets
    DOWNLOAD = "download"  # to the guest: the NAS's output octets


@dataclass(frozen=True)
class Held:
    """Usage a packet reported beyond what is possible: not billed, kept for an admin to review."""

    quantity: Quantity
    amount: int  # seconds or bytes, may exceed BIGINT
    reported: int  # the counter as the packet stated it
    reason: HoldReason


@dataclass(frozen=True)
class Counter:
    """One cumulative counter of a session: what was billed, and where the NAS counts (None: the same)."""

    billed: int
    position: int | None = None

    @property
    def nas_position(self) -> int:
        return self.billed if self.position is None else self.position


@dataclass(frozen=True)
class Advanced:
    """A counter after a packet: the new billed value and NAS position, and what was held."""

    counter: Counter
    held: Held | None


def advance_counter(quantity: Quantity, counter: Counter, reported: int | None, bound: int) -> Advanced:
    """Move `counter` to the packet's `reported` cumulative value, if that stays within `bound`.

    The increment is measured from the NAS's position (so an earlier jump is not counted again) unless
    the counter went back below it (the jump was a glitch, and the NAS counts from its true value
    again). A reported value not above what was billed (a retransmit, a reordered packet) changes
    nothing. An increment that would take the billed value beyond `bound` (the most it can reach now)
    is held whole: a counter that jumped is no evidence of any usage in particular, so none is billed
    for it, and the NAS's next plausible counters are billed as usual.
    """
    if reported is None:
        return Advanced(counter, None)
    position = counter.nas_position
    storable = min(reported, MAX_BIGINT)
    target = counter.billed + (storable - position) if storable >= position else storable
    new_position = max(position, storable)
    if target <= bound and reported == storable:
        billed = max(counter.billed, target)
        return Advanced(Counter(billed, None if new_position == billed else new_position), None)
    if reported > MAX_BIGINT:
        reason = HoldReason.COUNTER_OUT_OF_RANGE
    elif quantity is Quantity.SECONDS:
        reason = HoldReason.TIME_BEYOND_CLOCK
    else:
        reason = HoldReason.BYTES_BEYOND_LINE_RATE
    held = Held(quantity, target - counter.billed + (reported - storable), reported, reason)
    return Advanced(Counter(counter.billed, new_position), held)


def seconds_bound(seconds_since_start: int) -> int:
    """The most online time a session can have: the wall clock since it started, plus a small slack."""
    return max(0, seconds_since_start) + CLOCK_SLACK_S


def bytes_bound(billed: int, seconds_since_counters: int, max_rate_kbps: int) -> int:
    """The most a byte counter can reach: what was billed plus the line rate for the time since the
    previous counters (plus the clock slack), capped at what a counter column holds."""
    elapsed = max(0, seconds_since_counters) + CLOCK_SLACK_S
    return min(MAX_BIGINT, billed + elapsed * max_rate_kbps * 1000 // 8)


def _tolerance(session_time: int) -> int:
    return RESTART_TOLERANCE_S + session_time // 100


def pick_session(candidates: list[tuple[int, bool]], sent: int, began: int | None) -> int | None:
    """Which of a user's sessions with one NAS session id a packet is meant for, if any.

    `candidates` are (start, live) pairs, newest start first; `sent` is when the NAS sent the packet and
    `began` when the packet says its session began (sent - Acct-Session-Time), if it says. A session that
    began after the packet was sent is not its own. Of the others, the newest that had begun by `began`
    is its own: a late packet of an earlier session goes to that session, not to the one a reboot or a
    glitch opened after it. Without a start to go by (or none that fits): the live one, else the newest.
    """
    possible = [index for index, (start, _) in enumerate(candidates) if start <= sent + RESTART_TOLERANCE_S]
    if began is not None:
        for index in possible:
            if candidates[index][0] <= began + RESTART_TOLERANCE_S:
                return index
    return next((index for index in possible if candidates[index][1]), possible[0] if possible else None)


class Belonging(StrEnum):
    """How an accounting packet relates to the session it was matched to."""

    SAME = "same"  # bill it to that session
    DUPLICATE = "duplicate"  # a late copy of a closed session's packet: changes nothing
    OTHER = "other"  # another session (another card, or counters that started again): open a new one


@dataclass(frozen=True)
class MatchedSession:
    """What the belonging rule needs of the matched session (times as whole POSIX seconds)."""

    closed: bool
    same_user: bool
    started_at: int
    counters_at: int  # when its last accounting packet was sent (its start, before any)
    seconds: int
    input_octets: int
    output_octets: int


@dataclass(frozen=True)
class PacketFacts:
    """What the belonging rule needs of the packet (`at` as whole POSIX seconds)."""

    start: bool  # Acct-Status-Type = Start
    at: int
    session_time: int | None
    input_octets: int | None
    output_octets: int | None


def belonging(matched: MatchedSession, packet: PacketFacts) -> Belonging:
    """Whether a packet matched by NAS + Acct-Session-Id (or our Class) is the matched session's own.

    Another card's packet is another session. A packet whose Acct-Session-Time says its session began
    after the matched session's last packet was sent is another session (the NAS restarted its counters:
    a reboot, an id used again); a packet that was merely delayed (without saying so in Acct-Delay-Time)
    began before that. A closed session takes no new Start, and a packet without Acct-Session-Time that
    would move a closed session's counters is not trusted to be its own; a copy of a closed session's
    packet that moves nothing is a duplicate.
    """
    if not matched.same_user:
        return Belonging.OTHER
    restarted = False
    if packet.session_time is not None:
        began = packet.at - packet.session_time
        restarted = began > max(matched.started_at, matched.counters_at) + _tolerance(packet.session_time)
    if restarted:
        return Belonging.OTHER
    if not matched.closed:
        return Belonging.SAME
    moves = (
        (packet.session_time or 0) > matched.seconds
        or (packet.input_octets or 0) > matched.input_octets
        or (packet.output_octets or 0) > matched.output_octets
    )
    if not moves:
        return Belonging.DUPLICATE
    if packet.start or packet.session_time is None:
        return Belonging.OTHER
    return Belonging.SAME  # a late Interim or Stop of a session closed for silence: its last counters
