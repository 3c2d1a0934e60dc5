"""One accounting packet billed, the same way on both paths: the hook (a packet at a time, before its
answer) and the detail importer (many packets per transaction, after radiusd answered). Both decode the
attributes, take the event time from when radiusd received the packet minus its Acct-Delay-Time, try the
lock-free write of an open session's Interim/Stop or of the Start of a login waiting for it, and fall back
to the locked rules — so the same packets give the same charges to the minor unit whichever path bills them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from rlm_hotspot.db.cards import CardRecord
from rlm_hotspot.db.sessions import MeterUpdate, SessionOpening, SessionRow
from rlm_hotspot.radius.decode import Attributes, MalformedPacket, decode_accounting, event_time
from rlm_hotspot.services.sessions import (
    AccountingRefused,
    AccountingResult,
    AccountingUpdate,
    apply_planned,
    lock_cards_of,
    open_planned,
    opening_of,
    packet_identity,
    plan_start,
    plan_without_lock,
    record_accounting,
    record_accounting_without_lock,
    sessions_by_tokens,
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
        if done is None:  # On/Off, a card's first Start, a session not opened yet, usage to hold, a change
            with careful() as db:
                done = record_accounting(db, tariffs, update, now)
    except AccountingRefused as exc:
        return PacketOutcome(update, None, "refused", str(exc))
    return PacketOutcome(update, done)


@dataclass
class BatchTimings:
    """Where a batch's time went, in seconds: the importer logs and exports it per batch, so that a stall is
    found by its phase rather than guessed. `plan` (decoding and the rules) is what the others leave."""

    read: float = 0.0  # reading the sessions the packets name (again after a write) and locking the Starts' cards
    write: float = 0.0  # the planned writes' statements (sessions opened, meters)
    single: float = 0.0  # packets billed by the per-packet rules, in their place
    total: float = 0.0

    @property
    def plan(self) -> float:
        """Decoding and planning: the batch's own Python."""
        return max(0.0, self.total - self.read - self.write - self.single)

    @contextmanager
    def timing(self, phase: str) -> Iterator[None]:
        """Add the block's wall time to `phase` (read, write or single)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            setattr(self, phase, getattr(self, phase) + time.perf_counter() - started)


class BatchConflict(RuntimeError):
    """A session changed under a batch's planned writes (the worker, an admin): bill the batch one by one."""


def bill_batch(
    db: Session,
    packets: Sequence[tuple[Attributes, datetime]],
    *,
    careful: Careful,
    tariffs: TariffCache,
    nas: NasCache,
    timings: BatchTimings | None = None,
) -> list[PacketOutcome]:
    """Bill packets in order in the caller's transaction, as `bill_packet` bills each one, with fewer round trips.

    The sessions the packets name by our Class are read in one query. A Start that only opens the login
    waiting for it is planned (`plan_start`; its card locked with the others the batch's Starts use), and so
    is an Interim or Stop that the lock-free rule bills; the plans are written together, in one statement
    each, just before any other packet is billed (that one by `bill_packet`, reading what the plans wrote),
    before a session or a new card is planned a second time (then the sessions written since they were read
    are read again, together) and at the end. Raises BatchConflict when a planned write finds its session
    changed. `timings`, when given, gets where the time went.
    """
    timings = timings if timings is not None else BatchTimings()
    started = time.perf_counter()
    try:
        return _Batch(db, packets, careful, tariffs, nas, timings).bill()
    finally:
        timings.total += time.perf_counter() - started


class _Batch:
    """One batch being billed: what it read, what it planned and has not written yet."""

    def __init__(
        self,
        db: Session,
        packets: Sequence[tuple[Attributes, datetime]],
        careful: Careful,
        tariffs: TariffCache,
        nas: NasCache,
        timings: BatchTimings,
    ) -> None:
        self.db, self.packets, self.careful, self.tariffs, self.nas = db, packets, careful, tariffs, nas
        self.timings = timings
        self.updates: list[AccountingUpdate | None] = []
        for attributes, _ in packets:
            try:
                self.updates.append(decode_accounting(attributes))
            except MalformedPacket:
                self.updates.append(None)  # bill_packet says why
        tokens = [u.token for u in self.updates if u and u.token and u.status in ("start", "interim", "stop")]
        with timings.timing("read"):
            self.rows = sessions_by_tokens(db, tokens) if tokens else {}
        self.cards: dict[str, CardRecord] = {}
        self.meters: list[MeterUpdate] = []
        self.openings: list[SessionOpening] = []
        self.opening_cards: set[str] = set()  # the cards of `openings` (a second Start of one waits for the first)
        self.outdated: set[int] = set()  # sessions planned or written since they were read

    def bill(self) -> list[PacketOutcome]:
        outcomes = []
        for (attributes, received_at), update in zip(self.packets, self.updates, strict=True):
            row = self._row(update)
            planned = None if update is None or row is None else self._plan(update, row, attributes, received_at)
            if planned is None:
                self._flush()
                with self.timings.timing("single"):
                    planned = bill_packet(
                        attributes, received_at, quick=self.db, careful=self.careful, tariffs=self.tariffs, nas=self.nas
                    )
                self._touched(update, planned)
            outcomes.append(planned)
        self._flush()
        return outcomes

    def _row(self, update: AccountingUpdate | None) -> SessionRow | None:
        """The session the packet's Class names, as it stands after what was planned (read again if written)."""
        row = self.rows.get(update.token) if update is not None and update.token else None
        if row is not None and row.id in self.outdated:
            self._flush()
            stale = [token for token, known in self.rows.items() if known.id in self.outdated]
            with self.timings.timing("read"):
                self.rows.update(sessions_by_tokens(self.db, stale))
            self.outdated.clear()
            row = self.rows[row.auth_token]
        return row

    def _plan(
        self, update: AccountingUpdate, row: SessionRow, attributes: Attributes, received_at: datetime
    ) -> PacketOutcome | None:
        now = event_time(attributes, received_at)
        start = plan_start(row, update, now)
        if start is not None:
            if row.card_number in self.opening_cards:
                self._flush()  # the card's first Start of this flush may activate it
            if row.card_number not in self.cards:  # the cards of the batch's Starts, locked together
                waiting = [
                    self.rows[u.token] for u in self.updates if u and u.status == "start" and u.token in self.rows
                ]
                with self.timings.timing("read"):
                    self.cards.update(lock_cards_of(self.db, [row, *waiting]))
            opening = opening_of(start, self.cards[row.card_number])
            if opening is not None:
                self.openings.append(opening)
                self.opening_cards.add(row.card_number)
                self.outdated.add(row.id)
                return PacketOutcome(update, AccountingResult(row.id, 0))
        meter = plan_without_lock(self.db, self.tariffs, self.nas, row, update, now)
        if meter is None:
            return None
        self.meters.append(meter)
        self.outdated.add(row.id)
        return PacketOutcome(update, AccountingResult(row.id, meter.write.debited))

    def _flush(self) -> None:
        """Write what is planned: the Starts' sessions opened, then the meters."""
        with self.timings.timing("write"):
            self._write()

    def _write(self) -> None:
        if self.openings:
            if not open_planned(self.db, self.openings):
                raise BatchConflict(f"a login of the batch changed while it was opened ({len(self.openings)} planned)")
            self.openings.clear()
            self.opening_cards.clear()
            self.cards.clear()  # activated: read again
        if self.meters and not apply_planned(self.db, self.meters, self.meters[-1].now):
            raise BatchConflict(f"a session of the batch changed while it was billed ({len(self.meters)} planned)")
        self.meters.clear()

    def _touched(self, update: AccountingUpdate | None, outcome: PacketOutcome) -> None:
        """What a packet billed by the per-packet rules may have written is read again by the next packet that
        needs it: its session, the user's others, the holder of its NAS session id, every session of a NAS
        that restarted (anything else is caught by the planned writes' guards: BatchConflict); a card it
        activated is locked and read again."""
        self.cards.clear()
        if outcome.result is not None and outcome.result.session_id is not None:
            self.outdated.add(outcome.result.session_id)
        if update is not None:
            self.outdated.update(known.id for known in self.rows.values() if _may_touch(update, known))


def _may_touch(update: AccountingUpdate, row: SessionRow) -> bool:
    """Whether billing `update` by the per-packet rules may change the session `row` other than as its own."""
    return (
        update.status in ("on", "off")
        or (update.acct_session_id is not None and update.acct_session_id == row.acct_session_id)
        or (update.username is not None and update.username in (row.username, row.card_number))
    )
