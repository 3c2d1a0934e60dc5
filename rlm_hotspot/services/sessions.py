"""Session lifecycle and metering: RADIUS accounting, portal sessions with heartbeats, stale sessions.

Every update carries *cumulative* counters (seconds online, octets each way). The session keeps the last
counters seen and the core's rating meter; an update bills the difference between the new meter and
the old one, so duplicates, retransmits and reordered packets debit nothing twice and never negatively,
and a lost packet is made good by the next one. Ledger keys are the session and the cumulative charged
level, so a replay of the same update can never post twice.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from rlm_hotspot.core.cardcode import CardNumberError, normalise_card_number
from rlm_hotspot.core.clients import client_identity
from rlm_hotspot.core.decisions import Refusal
from rlm_hotspot.core.plausibility import (
    MAX_BIGINT,
    RESTART_TOLERANCE_S,
    Advanced,
    Belonging,
    Counter,
    Held,
    MatchedSession,
    PacketFacts,
    Quantity,
    advance_counter,
    belonging,
    bytes_bound,
    seconds_bound,
)
from rlm_hotspot.core.tariff import BytesAt, Meter, Tariff, Usage, bytes_affordable, rate, seconds_affordable
from rlm_hotspot.core.validity import seconds_left
from rlm_hotspot.db import cards as cards_db
from rlm_hotspot.db import quarantine as held_usage
from rlm_hotspot.db import sessions as q
from rlm_hotspot.db.catalog import hotspot_by_id
from rlm_hotspot.db.engine import Executor
from rlm_hotspot.pins import PinVault
from rlm_hotspot.services import cards
from rlm_hotspot.services.access import LoginRequest, Policy, decide_login, new_token, record_attempt
from rlm_hotspot.services.errors import CardRefused, NotFound, ServiceError
from rlm_hotspot.services.tariff_cache import NasCache, TariffCache

ACCOUNTING_STATUSES = ("start", "interim", "stop", "on", "off")
STATUS_HORIZON_S = 86400  # how far ahead the status page works out the time left


@dataclass(frozen=True)
class AccountingUpdate:
    """One RADIUS accounting packet, decoded by the adapter (octets already 64-bit)."""

    status: str  # start | interim | stop | on | off
    nas_ip: str
    username: str | None = None
    acct_session_id: str | None = None
    token: str | None = None  # our Class, echoed by the NAS
    session_time: int | None = None
    input_octets: int | None = None  # from the client (NAS view)
    output_octets: int | None = None  # to the client
    framed_ip: str | None = None
    calling_station_id: str | None = None
    terminate_cause: str | None = None


@dataclass(frozen=True)
class AccountingResult:
    session_id: int | None
    debited: int
    sessions_closed: int = 0
    held: tuple[Held, ...] = ()  # usage the packet reported beyond the bounds: quarantined, not billed


class AccountingRefused(ValueError):
    """A packet that cannot be attributed (unknown NAS, unknown card); logged, acknowledged, not billed."""


def record_accounting(db: Session, tariffs: TariffCache, update: AccountingUpdate, now: datetime) -> AccountingResult:
    """Apply one accounting packet in the caller's transaction (the adapter commits, then replies OK)."""
    if update.status not in ACCOUNTING_STATUSES:
        raise AccountingRefused(f"unknown Acct-Status-Type {update.status!r}")
    nas = q.nas_by_ip(db, update.nas_ip)  # not the cache: this is the path that must see a changed NAS
    if nas is None:
        raise AccountingRefused(f"accounting from unknown NAS {update.nas_ip}")
    if update.status in ("on", "off"):
        q.nas_restarted(db, nas.id, now)
        cause = "NAS-Reboot" if update.status == "on" else "NAS-Request"
        return AccountingResult(None, 0, q.close_sessions_of_nas(db, nas.id, started_before=now, cause=cause))
    user = packet_user(update)
    row = _matched_session(db, nas.id, user, update, now, lock=True)
    verdict = Belonging.OTHER if row is None else _belonging(row, user, update, now)
    if row is None or verdict is Belonging.OTHER:
        if row is not None and row.status != "closed" and _same_user(row, user):
            # the NAS counts this card's session from the start again: the one we had is over
            _close(db, row.id, row.last_seen_at, "Lost-Service")
        token_taken = row is not None and row.auth_token == update.token
        row = _pending_login(db, nas, user, update, now) or _session_without_start(
            db, tariffs, nas, update, now, token=None if token_taken else update.token
        )
    elif verdict is Belonging.DUPLICATE:
        return AccountingResult(row.id, 0)
    if row.status == "pending" or row.account_id is None:
        row = _open(db, row, update, now)
        if not _has_news(row, update):  # a Start: nothing used yet, nothing to write twice
            return AccountingResult(row.id, 0)
    return _bill_update(db, tariffs, row, update, now)


def record_accounting_without_lock(
    db: Session, tariffs: TariffCache, nas: NasCache, update: AccountingUpdate, now: datetime
) -> AccountingResult | None:
    """The common cases, an Interim-Update or Stop of an open session and the Start of a login waiting for it:
    one read and one guarded write.

    Meant for a connection in autocommit mode (no BEGIN/COMMIT round trips): the write is a single
    statement that checks what it was computed from. None when this path does not apply (an unknown or not
    yet opened session, a packet that may be another session's, usage to quarantine, a Start that uses its
    card first or whose NAS session id another session holds, a concurrent change): use
    `record_accounting` in a transaction instead.
    """
    if update.status == "start":
        return _start_without_lock(db, nas, update, now)
    if update.status not in ("interim", "stop"):
        return None
    nas_row = nas.get(db, update.nas_ip, now)
    if nas_row is None:
        return None
    row = _matched_session(db, nas_row.id, packet_user(update), update, now, lock=False)
    planned = plan_without_lock(db, tariffs, nas, row, update, now)
    if planned is None:
        return None
    if _write_planned(db, planned, update) is None:
        return None
    return AccountingResult(planned.row.id, planned.write.debited)


def _start_without_lock(db: Session, nas: NasCache, update: AccountingUpdate, now: datetime) -> AccountingResult | None:
    """A Start whose Class names a login waiting for it, on a card already in use, opened as the importer's
    batches open Starts (`plan_start`, `open_planned`): a NAS reboot storm is thousands of them, and in the
    hook the locked path's seven round trips were their cost (docs/radius.md, "A NAS reboot storm"). A
    first use opens the card's account under the card's lock: `record_accounting` does that."""
    if not update.token or nas.get(db, update.nas_ip, now) is None:
        return None
    planned = plan_start(q.session_by_token(db, update.token), update, now)
    opening = None if planned is None else opening_of(planned)
    if opening is None:
        return None
    return AccountingResult(opening.session_id, 0) if open_planned(db, [opening]) else None


def plan_without_lock(
    db: Session, tariffs: TariffCache, nas: NasCache, row: q.SessionRow | None, update: AccountingUpdate, now: datetime
) -> q.MeterUpdate | None:
    """The write `record_accounting_without_lock` makes for a packet on `row`, the session it was matched to
    (as read, unlocked), without making it; None when that path does not apply (see there)."""
    if update.status not in ("interim", "stop") or nas.get(db, update.nas_ip, now) is None:
        return None
    if row is None or row.status != "open" or row.account_id is None:
        return None
    if _belonging(row, packet_user(update), update, now) is not Belonging.SAME:
        return None
    bounded = _bounded_counters(row, update, now)
    if bounded.held:
        return None
    return _meter_update(db, tariffs, row, update, now, bounded)


def sessions_by_tokens(db: Session, tokens: list[str]) -> dict[str, q.SessionRow]:
    """The sessions our Class tokens name, unlocked, read in one query (a batch's packets are matched to them)."""
    return q.sessions_by_tokens(db, tokens)


def apply_planned(db: Session, planned: list[q.MeterUpdate], now: datetime) -> bool:
    """Write the planned meter updates (of distinct sessions) in one statement; False, having written only
    some, when a session changed since it was read: the caller rolls back and bills the packets one by one."""
    return len(q.apply_meters(db, planned, now)) == len(planned)


def _matched_session(
    db: Session, nas_id: int, user: q.PacketUser, update: AccountingUpdate, now: datetime, *, lock: bool
) -> q.SessionRow | None:
    """The session the packet was meant for (whether it belongs to it is `_belonging`'s to say)."""
    began = None if update.session_time is None else now - timedelta(seconds=update.session_time)
    return q.find_session(
        db,
        nas_id=nas_id,
        acct_session_id=update.acct_session_id,
        token=update.token,
        user=user,
        sent=now,
        began=began,
        lock=lock,
    )


def packet_user(update: AccountingUpdate) -> q.PacketUser:
    """The packet's User-Name, and the card number it names when it is one."""
    if update.username is None:
        return q.PacketUser(None)
    try:
        return q.PacketUser(update.username, normalise_card_number(update.username))
    except CardNumberError:
        return q.PacketUser(update.username)


def _same_user(row: q.SessionRow, user: q.PacketUser) -> bool:
    return user.username is None or user.username == row.username or user.card_number == row.card_number


def _belonging(row: q.SessionRow, user: q.PacketUser, update: AccountingUpdate, now: datetime) -> Belonging:
    matched = MatchedSession(
        closed=row.status == "closed",
        same_user=_same_user(row, user),
        started_at=q.posix_seconds(row.started_at),
        counters_at=q.posix_seconds(row.counters_at or row.started_at),
        seconds=max(row.seconds, row.reported_seconds or 0),
        input_octets=max(row.input_octets, row.reported_input_octets or 0),
        output_octets=max(row.output_octets, row.reported_output_octets or 0),
    )
    packet = PacketFacts(
        start=update.status == "start",
        at=q.posix_seconds(now),
        session_time=update.session_time,
        input_octets=update.input_octets,
        output_octets=update.output_octets,
    )
    return belonging(matched, packet)


def _bill_update(
    db: Session, tariffs: TariffCache, row: q.SessionRow, update: AccountingUpdate, now: datetime
) -> AccountingResult:
    """Bill an accounting packet's counters on a locked session, up to what is plausible (a Stop also closes
    the session; an Interim-Update's commit need not wait for the disk, since the next one restates its
    counters). What exceeds the bounds is quarantined with the packet's identity."""
    bounded = _bounded_counters(row, update, now)
    planned = _meter_update(db, tariffs, row, update, now, bounded)
    balance = _write_planned(db, planned, update)
    assert balance is not None, "the row is locked: nothing can have changed it"
    for held in bounded.held:
        _hold(db, row, update, held, now)
    return AccountingResult(row.id, planned.write.debited, held=bounded.held)


def _write_planned(db: Session, planned: q.MeterUpdate, update: AccountingUpdate) -> int | None:
    """Write a packet's planned meter update (guarded by the counters it was computed from); the balance after
    it, or None when the session changed since it was read. An Interim-Update's commit need not wait for the
    disk: the next one restates its counters."""
    durable = update.status != "interim"
    return q.apply_meter(
        db, planned.row, planned.write, planned.now, durable=durable, stop=planned.stop, positions=planned.positions
    )


def _meter_update(
    db: Session,
    tariffs: TariffCache,
    row: q.SessionRow,
    update: AccountingUpdate,
    now: datetime,
    bounded: BoundedCounters,
) -> q.MeterUpdate:
    """The meter write of a packet's bounded counters on `row`, and the NAS's counter positions."""
    write = _meter_write(
        tariffs.get(db, row.tariff_id, now).tariff,
        row,
        bounded.seconds.billed,
        bounded.input_octets.billed,
        bounded.output_octets.billed,
        now,
    )
    return q.MeterUpdate(
        row,
        write,
        now,
        stop=(now, update.terminate_cause or "Stop") if update.status == "stop" and row.status != "closed" else None,
        positions=q.CounterPositions(
            bounded.seconds.position,
            bounded.input_octets.position,
            bounded.output_octets.position,
            # the next bytes are bounded from when these were billed; held bytes were not
            bytes_at=None if any(held.quantity is not Quantity.SECONDS for held in bounded.held) else now,
        ),
    )


def _hold(db: Session, row: q.SessionRow, update: AccountingUpdate, held: Held, now: datetime) -> None:
    """Quarantine what a packet reported beyond the bounds, once per reported value (retransmits)."""
    held_usage.hold(
        db,
        source="radius",
        reason=held.reason,
        quantity=held.quantity,
        held=held.amount,
        reported=held.reported,
        identity=packet_identity(update),
        key=f"radius:{row.id}:{held.quantity}:{held.reported}",
        received_at=now,
        session_id=row.id,
        hotspot_id=row.hotspot_id,
        nas_id=row.nas_id,
        detail={**asdict(update), "event_time": now.isoformat()},
    )


def packet_identity(update: AccountingUpdate) -> str:
    """An accounting packet as an admin finds it again in the NAS's and radiusd's logs."""
    return (
        f"Accounting {update.status} from NAS {update.nas_ip}, Acct-Session-Id {update.acct_session_id!r}, "
        f"User-Name {update.username!r}"
    )


def release_held(db: Session, tariffs: TariffCache, held: held_usage.HeldUsage, now: datetime) -> int:
    """Bill usage an admin released from the quarantine to its session; the minor units debited.

    The session's counter moves on by the held amount (whatever it stands at now), rated by its tariff
    like any update.
    """
    row = None if held.session_id is None else q.session_by_id(db, held.session_id, lock=True)
    if row is None:
        raise NotFound(f"quarantine {held.id} names no session")
    if row.account_id is None:
        raise ServiceError(f"session {row.id} never opened: there is no account to bill")
    counters = {"seconds": row.seconds, "input_octets": row.input_octets, "output_octets": row.output_octets}
    column = {"seconds": "seconds", "upload": "input_octets", "download": "output_octets"}[held.quantity]
    counters[column] += int(held.held)
    if counters[column] > MAX_BIGINT:
        raise ServiceError(f"quarantine {held.id}: {held.held} {held.quantity} is more than a counter can hold")
    billed = _bill(
        db,
        tariffs,
        row,
        now=now,
        seconds=counters["seconds"],
        input_octets=counters["input_octets"],
        output_octets=counters["output_octets"],
    )
    assert billed is not None, "the row is locked: nothing can have changed it"
    return billed.debited


@dataclass(frozen=True)
class BoundedCounters:
    """A packet's counters as they may be billed, the NAS's positions, and what is held."""

    seconds: Counter
    input_octets: Counter
    output_octets: Counter
    held: tuple[Held, ...]


def _bounded_counters(row: q.SessionRow, update: AccountingUpdate, now: datetime) -> BoundedCounters:
    """The packet's counters bounded by the wall clock since the session started (time) and the
    hotspot's line rate since the previous counters (bytes, where the NAS meters them)."""
    since_start = q.whole_seconds(now - row.started_at)
    time = advance_counter(
        Quantity.SECONDS,
        Counter(row.seconds, row.reported_seconds),
        update.session_time,
        max(row.seconds, seconds_bound(since_start)),
    )
    since_counters = q.whole_seconds(now - (row.counters_at or row.started_at))
    metered = row.traffic_meter == "radius" and row.source == "radius"
    advanced = []
    for quantity, billed, position, reported in (
        (Quantity.UPLOAD, row.input_octets, row.reported_input_octets, update.input_octets),
        (Quantity.DOWNLOAD, row.output_octets, row.reported_output_octets, update.output_octets),
    ):
        counter = Counter(billed, position)
        if metered:
            advanced.append(
                advance_counter(quantity, counter, reported, bytes_bound(billed, since_counters, row.max_rate_kbps))
            )
        else:  # bytes another meter bills are not the NAS's to move
            advanced.append(Advanced(counter, None))
    upload, download = advanced
    return BoundedCounters(
        time.counter,
        upload.counter,
        download.counter,
        tuple(held for held in (time.held, upload.held, download.held) if held is not None),
    )


def _session_without_start(
    db: Session,
    tariffs: TariffCache,
    nas: q.PacketNas,
    update: AccountingUpdate,
    now: datetime,
    *,
    token: str | None,
) -> q.SessionRow:
    """A packet whose Start (and Accept) we never saw: bill it all the same, from its own counters.

    It began when its Acct-Session-Time says, but no earlier than the hotspot's longest session allows
    nor before the NAS last restarted (what it claims beyond that is held by the bound on time).
    """
    if not update.username:
        raise AccountingRefused("accounting packet without User-Name for an unknown session")
    try:
        card = cards.find_card(db, update.username, lock=True)
    except CardRefused as exc:
        raise AccountingRefused(f"accounting for {update.username!r}: {exc}") from None
    tariff_id = card.tariff_id or _hotspot_tariff(db, nas.hotspot_id)
    started = now - timedelta(seconds=min(update.session_time or 0, nas.max_session_seconds))
    if nas.rebooted_at is not None:  # no session the NAS reports began before it last restarted
        started = max(started, nas.rebooted_at)
    ended = _take_acct_id(db, nas.id, update.acct_session_id, started, now)
    session_id = q.insert_session(
        db,
        status="pending" if ended is None else "closed",
        stopped_at=ended,
        terminate_cause=None if ended is None else "Lost-Service",
        account_id=card.account_id,
        card_id=card.id,
        hotspot_id=nas.hotspot_id,
        tariff_id=tariffs.get(db, tariff_id, now).id,
        nas_id=nas.id,
        source="radius",
        acct_session_id=update.acct_session_id,
        username=update.username,
        auth_token=token or new_token(),
        framed_ip=update.framed_ip,
        calling_station_id=update.calling_station_id,
        started_at=started,
        last_seen_at=now,
    )
    row = q.session_by_id(db, session_id, lock=True)
    assert row is not None
    return row


def _pending_login(
    db: Session,
    nas: q.PacketNas,
    user: q.PacketUser,
    update: AccountingUpdate,
    now: datetime,
) -> q.SessionRow | None:
    """The login a packet without our Class (a NAS that does not echo it) starts: the user's latest one at
    this NAS still waiting for its Start. Its Accept time bounds the session's start."""
    if user.username is None:
        return None
    row = q.pending_login(db, nas.id, user, now + timedelta(seconds=RESTART_TOLERANCE_S))
    if row is None or _take_acct_id(db, nas.id, update.acct_session_id, row.started_at, now) is not None:
        return None
    return row


def _take_acct_id(
    db: Session, nas_id: int, acct_session_id: str | None, started: datetime, now: datetime
) -> datetime | None:
    """A NAS has one live session per session id: when another holds the id, the older of the two is over.

    The holder, if it began first (the NAS gave its id to this new session: it rebooted, or lost the
    holder), is closed at its last packet; else the packet's own session is the older one, and it is
    recorded as ended when the packet was sent (the returned time).
    """
    if acct_session_id is None:
        return None
    holder = q.live_session_with_acct_id(db, nas_id, acct_session_id)
    if holder is None:
        return None
    if holder.started_at <= started:
        _close(db, holder.id, holder.last_seen_at, "Lost-Service")
        return None
    return now


def _hotspot_tariff(db: Session, hotspot_id: int) -> int:
    row = hotspot_by_id(db, hotspot_id)
    assert row is not None
    return int(row.tariff_id)


def _open(db: Session, row: q.SessionRow, update: AccountingUpdate, now: datetime) -> q.SessionRow:
    """Accounting-Start (or the first packet we see): the session opens and first use activates the card."""
    card = cards.find_card(db, row.card_number, lock=True)
    opening = _opening(row, update, now)
    if update.acct_session_id and update.acct_session_id != row.acct_session_id and row.nas_id is not None:
        # the NAS gives the login its session id: another live session holding it is over (or, if younger,
        # this one is: it ended when the packet was sent)
        ended = _take_acct_id(db, row.nas_id, update.acct_session_id, _began(row, update, now), now)
        if ended is not None:
            opening |= {"status": "closed", "stopped_at": ended, "terminate_cause": "Lost-Service"}
    try:
        account_id = cards.activate(db, card, now)
    except CardRefused as exc:  # added to another card since its login (a top-up): no value left to open on
        raise AccountingRefused(f"Start of {row.card_number}'s login: {exc}") from None
    return q.open_session(db, row.id, account_id=account_id, **opening)


def _opening(row: q.SessionRow, update: AccountingUpdate, now: datetime) -> dict[str, object]:
    """The session's columns as the packet that opens it sets them (all but its account)."""
    started = _began(row, update, now)
    return {
        "status": "open" if row.status != "closed" else "closed",
        "acct_session_id": update.acct_session_id or row.acct_session_id,
        "username": row.username or update.username,
        "framed_ip": update.framed_ip,
        "calling_station_id": update.calling_station_id or None,
        "started_at": started,
        "last_seen_at": now,
    }


def _began(row: q.SessionRow, update: AccountingUpdate, now: datetime) -> datetime:
    """When the session the packet opens began: when its Acct-Session-Time says, but never before the login
    that let it in (nor before the first packet of a session opened without one)."""
    return max(now - timedelta(seconds=update.session_time or 0), row.started_at)


@dataclass(frozen=True)
class PlannedStart:
    """The Start of a login that waits for it, to be opened as `record_accounting` opens it."""

    row: q.SessionRow
    opening: dict[str, object]
    now: datetime


def plan_start(row: q.SessionRow | None, update: AccountingUpdate, now: datetime) -> PlannedStart | None:
    """What `record_accounting` does with a Start whose Class names `row` (read earlier, unlocked), when all it
    does is open the login waiting for it (and activate its card): no other session, nothing to bill. None
    when that is not the case: bill the packet with `record_accounting`."""
    if update.status != "start" or row is None or row.status != "pending" or _has_news(row, update):
        return None
    if _belonging(row, packet_user(update), update, now) is not Belonging.SAME:
        return None
    return PlannedStart(row, _opening(row, update, now), now)


def lock_cards_of(db: Session, starts: list[q.SessionRow]) -> dict[str, cards_db.CardRecord]:
    """The cards of the logins a batch's Starts open, locked in one query (in id order: no deadlock)."""
    return cards_db.lock_cards(db, sorted({row.card_number for row in starts}))


def opening_of(planned: PlannedStart, card: cards_db.CardRecord | None = None) -> q.SessionOpening | None:
    """A planned Start's session opening, as `_open` opens it. On its `card` locked by `lock_cards_of` (a batch):
    on an active card's account, or a new card's first use (its account opened with its face value). Without
    it (the hook, nothing locked): only on the account of a card in use as the session's row read it, which
    the opening's statement checks again; a first use needs the card's lock (`record_accounting`). None when
    the session cannot be opened so (`_open` says why)."""
    row = planned.row
    account_id: int | None
    if card is not None and card.status == "new":  # first use: its account is opened with its face value
        account_id, face_value = None, card.face_value
    else:
        status, account_id = (row.card_status, row.account_id) if card is None else (card.status, card.account_id)
        face_value = 0  # loaded at first use only
        if status != "active" or account_id is None:
            return None
    return q.SessionOpening(row.id, row.card_id, row.card_number, face_value, account_id, planned.opening, planned.now)


def open_planned(db: Session, openings: list[q.SessionOpening]) -> bool:
    """Open the planned Starts' sessions in one statement; False, having opened only some, when a session is
    no longer pending or another live session holds its NAS session id: the caller rolls back and bills the
    packets one by one (the per-packet rules settle which session holds the id)."""
    return len(q.open_sessions(db, openings)) == len(openings)


def _has_news(row: q.SessionRow, update: AccountingUpdate) -> bool:
    """Whether a packet would move a session's meter (or end it) beyond what the row holds."""
    return (
        update.status == "stop"
        or (update.session_time or 0) > row.seconds
        or (update.input_octets or 0) > row.input_octets
        or (update.output_octets or 0) > row.output_octets
    )


@dataclass(frozen=True)
class Billed:
    """A meter write that went through, and the account's balance right after it."""

    write: q.MeterWrite
    balance: int

    @property
    def debited(self) -> int:
        return self.write.debited


def _bill(
    db: Executor,
    tariffs: TariffCache,
    row: q.SessionRow,
    *,
    seconds: int,
    input_octets: int,
    output_octets: int,
    now: datetime,
    durable: bool = True,
    stop: tuple[datetime, str] | None = None,
    positions: q.CounterPositions | None = None,
) -> Billed | None:
    """Advance the session's counters to the given cumulative values and debit the difference.

    None when the session changed since `row` was read (only possible without the row lock: the caller
    then takes the lock and tries again).
    """
    write = _meter_write(tariffs.get(db, row.tariff_id, now).tariff, row, seconds, input_octets, output_octets, now)
    balance = q.apply_meter(db, row, write, now, durable=durable, stop=stop, positions=positions)
    return None if balance is None else Billed(write, balance)


def _meter_write(
    tariff: Tariff,
    row: q.SessionRow | q.SessionView,
    seconds: int,
    input_octets: int,
    output_octets: int,
    now: datetime,
) -> q.MeterWrite:
    """The session's meter advanced to new cumulative counters, rated by the core."""
    traffic: tuple[BytesAt, ...] = ()
    new_in, new_out = row.input_octets, row.output_octets
    if row.traffic_meter == "radius" and row.source == "radius":
        # one meter per quantity: only a RADIUS-metered hotspot takes bytes from the NAS's counters
        new_in, new_out = max(row.input_octets, input_octets), max(row.output_octets, output_octets)
        traffic = (BytesAt(now, download=new_out - row.output_octets, upload=new_in - row.input_octets),)
    old = Meter(row.seconds, row.time_cost_num, row.traffic_cost_num)
    rated = rate(tariff, ZoneInfo(row.timezone), old, Usage(row.started_at, seconds, traffic))
    return q.MeterWrite(
        seconds=rated.meter.seconds,
        input_octets=new_in,
        output_octets=new_out,
        time_cost_num=rated.meter.time_cost_num,
        traffic_cost_num=rated.meter.traffic_cost_num,
        charged=rated.charged,
        time_debit=rated.time_debit,
        time_key=f"time:{row.id}:{rated.time_charged}",
        debit_seconds=rated.debit_seconds,
        traffic_debit=rated.traffic_debit,
        traffic_key=f"traffic:{row.id}:{rated.traffic_charged}",
        debit_bytes=rated.billable_bytes,
    )


def _close(db: Session, session_id: int, at: datetime, cause: str) -> None:
    q.update_session(db, session_id, status="closed", stopped_at=at, terminate_cause=cause)


def close_stale_sessions(db: Session, policy: Policy, now: datetime) -> int:
    """Close sessions whose NAS went silent (or whose Accept never got a Start), at their last counters.

    Nothing more is billed: what was reported is billed, and the guest is not charged for the silence.
    """
    closed = 0
    for session_id in q.stale_sessions(db, now, policy.pending_session_ttl_s):
        row = q.session_by_id(db, session_id)
        assert row is not None
        _close(db, session_id, row.last_seen_at, "Stale" if row.status == "open" else "No-Start")
        closed += 1
    return closed


# -- portal sessions (standalone hotspots) -----------------------------------------------------------


@dataclass(frozen=True)
class SessionStatus:
    """What the guest's status page shows."""

    session_id: int
    token: str
    open: bool
    card_number: str
    balance: int
    started_at: datetime
    online_seconds: int
    upload_bytes: int
    download_bytes: int
    seconds_remaining: int
    bytes_remaining: int | None
    deadline: datetime | None
    timezone: str
    terminate_cause: str | None


def open_portal_session(
    db: Session,
    vault: PinVault,
    tariffs: TariffCache,
    policy: Policy,
    *,
    card_text: str,
    pin: str,
    hotspot_id: int,
    client_ip: str,
    client_mac: str | None,
    now: datetime,
) -> SessionStatus:
    """A standalone login: decide, take a slot under the card lock, activate, open the session.

    A refusal raises CardRefused after recording the attempt (the caller must still commit, so wrong
    PINs count towards the lockout).
    """
    client = client_identity(client_mac, client_ip)
    request = LoginRequest(card_text=card_text, source="portal", hotspot_id=hotspot_id, client=client, pin=pin)
    try:
        grant = decide_login(db, vault, tariffs, policy, request, now)
        live = q.lock_card_and_count_live(db, grant.card_id, now, policy.pending_session_ttl_s)
        if live >= tariffs.get(db, grant.tariff_id, now).spec.simultaneous_use:
            raise CardRefused(Refusal.TOO_MANY_SESSIONS)
    except CardRefused as refused:
        record_attempt(
            db,
            card_text=card_text,
            client=client,
            hotspot_id=hotspot_id,
            source="portal",
            outcome=refused.refusal,
            now=now,
        )
        raise
    card = cards.find_card(db, grant.card_number, lock=True)
    account_id = cards.activate(db, card, now)
    token = new_token()
    q.insert_session(
        db,
        status="open",
        account_id=account_id,
        card_id=grant.card_id,
        hotspot_id=grant.hotspot_id,
        tariff_id=grant.tariff_id,
        source="portal",
        auth_token=token,
        framed_ip=client_ip,
        calling_station_id=client_mac,
        started_at=now,
        last_seen_at=now,
        last_heartbeat_at=now,
    )
    record_attempt(
        db, card_text=card_text, client=client, hotspot_id=hotspot_id, source="portal", outcome=None, now=now
    )
    return session_status(db, tariffs, token, now)


def post_heartbeat(db: Session, tariffs: TariffCache, token: str, now: datetime) -> SessionStatus:
    """Rate and post a heartbeat under the session's row lock: (standalone) bill online time up to now."""
    posted = post_heartbeat_on(db, tariffs, session_view(db, token, lock=True), now)
    assert posted is not None, "the row is locked: nothing can have changed it"
    return status_of(db, tariffs, posted, now)


def post_heartbeat_on(db: Executor, tariffs: TariffCache, view: q.SessionView, now: datetime) -> q.SessionView | None:
    """Rate and post a heartbeat of the session `view` shows; returns the session as it is after it (`view`
    itself when not open), from what was read and posted.

    One guarded write, no re-read. None when the session changed since `view` was read (only possible
    without the row lock: the caller then takes the lock and tries again). The write's commit need not
    wait for the disk: the next heartbeat restates the cumulative online time, so losing one loses no money.
    """
    if view.status != "open":
        return view
    write = rate_online_time(db, tariffs, view, now)
    balance = q.apply_meter(db, view, write, now, durable=False, heartbeat_at=now)
    return None if balance is None else view_after_post(view, write, now, balance)


def rate_online_time(db: Executor, tariffs: TariffCache, view: q.SessionView, now: datetime) -> q.MeterWrite:
    """The meter write a heartbeat (or a gate's open time) at `now` makes on an open session read as `view`
    (rated, not posted). Standalone: the heartbeats are the time meter; RADIUS: accounting bills, the
    heartbeat only counts.
    """
    online = max(0, q.whole_seconds(now - view.started_at))
    seconds = online if view.source == "portal" else view.seconds
    tariff = tariffs.get(db, view.tariff_id, now).tariff
    return _meter_write(tariff, view, seconds, view.input_octets, view.output_octets, now)


def view_after_post(view: q.SessionView, write: q.MeterWrite, now: datetime, balance: int) -> q.SessionView:
    """The session as `write` leaves it, with the account's `balance` after it."""
    return replace(
        view,
        seconds=write.seconds,
        input_octets=write.input_octets,
        output_octets=write.output_octets,
        time_cost_num=write.time_cost_num,
        traffic_cost_num=write.traffic_cost_num,
        charged=write.charged,
        last_heartbeat_at=now,
        balance=balance,
    )


def logout(db: Session, tariffs: TariffCache, token: str, now: datetime) -> SessionStatus:
    """The guest ends the session: bill to now (standalone) and close it."""
    view = session_view(db, token, lock=True)
    if view.status != "closed":
        if view.source == "portal":
            post_heartbeat(db, tariffs, token, now)
        _close(db, view.id, now, "User-Request")
    return session_status(db, tariffs, token, now)


def session_status(db: Session, tariffs: TariffCache, token: str, now: datetime) -> SessionStatus:
    return status_of(db, tariffs, session_view(db, token), now)


def session_view(db: Executor, token: str, *, lock: bool = False) -> q.SessionView:
    """The session with the given token, its card and its balance (NotFound: no such session)."""
    view = q.session_view_by_token(db, token, lock=lock)
    if view is None:
        raise NotFound("no such session (it may have ended)")
    return view


def status_of(db: Executor, tariffs: TariffCache, view: q.SessionView, now: datetime) -> SessionStatus:
    """What the status page shows, computed from one read of the session (no query but a tariff reload)."""
    tariff = tariffs.get(db, view.tariff_id, now).tariff
    tz = ZoneInfo(view.timezone)
    deadline = cards.deadline_of(view, now)
    horizon = seconds_left(deadline, now, STATUS_HORIZON_S)
    meter = Meter(view.seconds, view.time_cost_num, view.traffic_cost_num)
    is_open = view.status != "closed"
    balance = view.balance
    remaining = seconds_affordable(tariff, tz, view.started_at, meter, balance, horizon) if is_open else 0
    return SessionStatus(
        session_id=view.id,
        token=view.token,
        open=is_open,
        card_number=view.card_number,
        balance=balance,
        started_at=view.started_at,
        online_seconds=view.seconds,
        upload_bytes=view.input_octets,
        download_bytes=view.output_octets,
        seconds_remaining=remaining,
        bytes_remaining=bytes_affordable(tariff, tz, now, meter, balance) if is_open else 0,
        deadline=deadline,
        timezone=view.timezone,
        terminate_cause=view.terminate_cause,
    )
