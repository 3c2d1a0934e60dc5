"""One accounting packet billed, the same way on both paths: the hook (a packet at a time, before its
answer) and the detail importer (many packets per transaction, after radiusd answered). Both decode the
attributes, take the event time from when radiusd received the packet minus its Acct-Delay-Time, try the
lock-free write of an open session's Interim/Stop and fall back to the locked rules — so the same packets
give the same charges to the minor unit whichever path bills them.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from rlm_hotspot.radius.decode import Attributes, MalformedPacket, decode_accounting, event_time
from rlm_hotspot.services.sessions import (
    AccountingRefused,
    AccountingResult,
    AccountingUpdate,
    packet_identity,
    record_accounting,
    record_accounting_without_lock,
)
from rlm_hotspot.services.tariff_cache import NasCache, TariffCache

#: How the billing of one packet runs in its caller's unit of work: `quick` is a handle for the lock-free
#: write (autocommit in the hook; the batch's transaction in the importer), `careful()` gives a handle in a
#: transaction (or savepoint) that is rolled back when the packet is refused.
Careful = Callable[[], AbstractContextManager[Session]]


@dataclass(frozen=True)
class PacketOutcome:
    """What became of one packet: billed (`result`), or acknowledged and not billed (`unbilled` says why)."""

    update: AccountingUpdate | None
    result: AccountingResult | None
    unbilled: str | None = None  # the metric's reason: malformed | refused
    why: str = ""

    def log_lines(self) -> list[tuple[bool, str]]:
        """(is an error, message) for the log: a packet not billed, usage held in the quarantine."""
        if self.unbilled == "malformed":
            return [(True, f"accounting: packet acknowledged but not billed: {self.why}")]
        if self.unbilled is not None:
            return [(False, f"accounting: packet acknowledged but not billed: {self.why}")]
        assert self.update is not None and self.result is not None
        return [
            (
                False,
                f"accounting: {held.amount} {held.quantity} not billed ({held.reason}, reported {held.reported}) "
                f"of {packet_identity(self.update)}: held in the quarantine (`hotspotctl quarantine list`)",
            )
            for held in self.result.held
        ]


def bill_packet(
    attributes: Attributes,
    received_at: datetime,
    *,
    quick: Session,
    careful: Careful,
    tariffs: TariffCache,
    nas: NasCache,
) -> PacketOutcome:
    """Bill one Accounting-Request received at `received_at`; database faults propagate (nothing billed)."""
    try:
        update = decode_accounting(attributes)
    except MalformedPacket as exc:  # a retransmit would be just as wrong: acknowledge, bill nothing
        return PacketOutcome(None, None, "malformed", str(exc))
    now = event_time(attributes, received_at)
    try:
        done = record_accounting_without_lock(quick, tariffs, nas, update, now)
        if done is None:  # Start, On/Off, a session not opened yet, usage to hold, a concurrent change
            with careful() as db:
                done = record_accounting(db, tariffs, update, now)
    except AccountingRefused as exc:
        return PacketOutcome(update, None, "refused", str(exc))
    return PacketOutcome(update, done)
