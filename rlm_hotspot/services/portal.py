"""The captive portal's use cases: its hotspot, signs of life from a guest, and top-ups with lockout.

The heartbeat rule ("the session lives while its status page is open") in one place:

* ``on``: only the status page (JavaScript heartbeat or meta-refresh) keeps a session alive;
* ``grace``: the operating system's RFC 8908 Captive Portal API polls from the client's address count
  too, so a phone whose captive-portal window closed itself stays online while it keeps asking;
* ``off``: no heartbeat is required (logout, money or the card's deadline end the session).

A session silent for longer than the hotspot's ``heartbeat_timeout`` has ended (a hidden page gets
``hidden_grace``, a closed page a few seconds: ``rlm_hotspot.core.heartbeat``): the worker cuts it (its
gate, or a Disconnect), and a portal that sees such a standalone session first closes it and its gate.
Either way its online time is billed up to the cut, because the gate was open until then.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy.orm import Session

from rlm_hotspot.core.cardcode import CardNumberError, normalise_card_number
from rlm_hotspot.core.clients import client_identity
from rlm_hotspot.core.decisions import Refusal
from rlm_hotspot.core.heartbeat import (
    TERMINATE_CAUSES,
    Deadline,
    HeartbeatRule,
    PageState,
    Silence,
    heartbeat_deadline,
)
from rlm_hotspot.db import enforcement as enforcement_db
from rlm_hotspot.db import page_state as page_state_db
from rlm_hotspot.db import portal as q
from rlm_hotspot.db import sessions as sessions_db
from rlm_hotspot.db.engine import Executor
from rlm_hotspot.db.sessions import MeterWrite, SessionView
from rlm_hotspot.pins import PinVault
from rlm_hotspot.services import cards, sessions
from rlm_hotspot.services.access import Grant, LoginRequest, Policy, decide_login, record_attempt
from rlm_hotspot.services.errors import CardRefused, NotFound, ServiceError
from rlm_hotspot.services.gate_time import bill_open_time
from rlm_hotspot.services.sessions import SessionStatus
from rlm_hotspot.services.tariff_cache import TariffCache

HEARTBEAT_TIMEOUT_CAUSE = TERMINATE_CAUSES[Silence.STOPPED]
SILENCE_CAUSES = frozenset(TERMINATE_CAUSES.values())  # the session ended under the heartbeat rule
GATE_FAILED_CAUSE = "Gate-Failed"
HEARTBEAT_WRITE_ROUNDS = 3  # a held heartbeat whose session changes under this many writes is given up


class Signal(StrEnum):
    """Where a sign of life came from."""

    PAGE = "page"  # the status page: JavaScript heartbeat, meta-refresh, any portal page view
    CAPTIVE_API = "captive_api"  # the OS polling the RFC 8908 API from the client's address


@dataclass(frozen=True)
class PortalHotspot:
    """The one hotspot a portal process serves, as the portal needs it."""

    id: int
    name: str
    timezone: str
    mode: str  # standalone | radius
    heartbeat: str  # on | off | grace
    heartbeat_timeout: int
    hidden_grace: int  # seconds a page in the background keeps its session (sql/016)
    portal_url: str | None
    terms_of_use: str | None

    @property
    def heartbeat_required(self) -> bool:
        return self.heartbeat != "off"

    @property
    def rule(self) -> HeartbeatRule:
        return HeartbeatRule(self.heartbeat, self.heartbeat_timeout, self.hidden_grace)

    def counts_as_heartbeat(self, signal: Signal) -> bool:
        return signal is Signal.PAGE or self.heartbeat != "on"


@dataclass(frozen=True)
class PortalStatus:
    """A session's status plus when it ends unless another heartbeat arrives (None: it does not)."""

    status: SessionStatus
    cut_at: datetime | None


def portal_hotspot(session: Executor, name: str) -> PortalHotspot:
    row = q.hotspot_by_name(session, name)
    if row is None:
        raise NotFound(f"no hotspot {name!r}: create it with `hotspotctl hotspot add`")
    return PortalHotspot(**row._mapping)


def set_terms_of_use(session: Session, hotspot_name: str, terms: str | None) -> None:
    """Require guests of a hotspot to accept these terms before logging in (None: no terms)."""
    hotspot = portal_hotspot(session, hotspot_name)
    q.set_terms_of_use(session, hotspot.id, terms.strip() if terms and terms.strip() else None)


def last_sign_of_life(view: SessionView) -> datetime:
    return view.last_heartbeat_at or view.started_at


def heartbeat_expired(hotspot: PortalHotspot, view: SessionView, now: datetime) -> bool:
    """Whether the session may have ended under the heartbeat rule: silent for longer than the timeout.

    The cheap test of the hot path (no page state read). A page in the background may still be within its
    hidden grace: `keep_alive` decides, under the row lock, with what the page last said.
    """
    return view.status != "closed" and _silent_too_long(hotspot, last_sign_of_life(view), now)


def silence_deadline(session: Executor, hotspot: PortalHotspot, view: SessionView) -> Deadline | None:
    """The session's deadline under the heartbeat rule, with what its page last said (one read)."""
    state, state_at = page_state_db.page_state(session, view.id)
    return heartbeat_deadline(hotspot.rule, last_sign_of_life(view), state, state_at)


def heartbeat_cut_at(session: Executor, hotspot: PortalHotspot, view: PortalStatus) -> datetime | None:
    """When the worker will cut the session unless another sign of life comes: `view.cut_at` counts the
    timeout from the last sign of life, but a page that said it went to the background gets the hidden
    grace and one that said it was closed ends soon after — the full rule, with what the page said (one
    read). None: no heartbeat rule, or the session has ended."""
    if view.cut_at is None:
        return None
    last = view.cut_at - timedelta(seconds=hotspot.heartbeat_timeout)  # what cut_at was counted from
    state, state_at = page_state_db.page_state(session, view.status.session_id)
    deadline = heartbeat_deadline(hotspot.rule, last, state, state_at)
    return None if deadline is None else deadline.at


def keep_alive(
    session: Session, tariffs: TariffCache, hotspot: PortalHotspot, token: str, now: datetime, signal: Signal
) -> PortalStatus:
    """A sign of life from the guest: extend and bill the session when the hotspot's rule says it counts.

    In a transaction, under the session's row lock. A standalone session already past its deadline is
    closed instead (the worker would have done it), billed up to now: its gate was open until now.
    RADIUS sessions are the NAS's to end: the worker sends the Disconnect-Request, the portal only reports.
    """
    view = sessions.session_view(session, token, lock=True)
    if view.source == "portal" and view.status == "open":
        deadline = silence_deadline(session, hotspot, view)
        if deadline is not None and now > deadline.at:
            bill_open_time(session, tariffs, view, now)
            sessions_db.update_session(
                session, view.id, status="closed", stopped_at=now, terminate_cause=TERMINATE_CAUSES[deadline.silence]
            )
            return PortalStatus(sessions.session_status(session, tariffs, token, now), None)
    status = _sign_of_life(session, tariffs, hotspot, view, now, signal)
    assert status is not None, "the row is locked: nothing can have changed it"
    return status


def note_page(session: Executor, token: str, state: PageState | None, now: datetime) -> bool:
    """What the guest's status page says about itself (Page Lifecycle), after its sign of life: hidden,
    closed, or visible again (None). False when the session has ended."""
    return page_state_db.note_page_state(session, token, state, now)


@dataclass(frozen=True)
class HeldHeartbeat:
    """A heartbeat billed in memory: the write it makes on `base`, and the session as it leaves it."""

    base: SessionView
    write: MeterWrite
    billed: SessionView
    at: datetime


@dataclass
class _Kept:
    seen_at: datetime  # when the database last confirmed `view`
    view: SessionView  # as last read or written: what a guarded write is checked against
    held: HeldHeartbeat | None = None  # the latest heartbeat billed in memory, not written yet


@dataclass
class RecentViews:
    """This process's view of each session right after it read or billed one of its heartbeats.

    A guest's browser keeps its connection to the portal, so the next heartbeat usually comes back to the
    same process: it can start from this view instead of reading the session again, because its write is
    guarded (it goes through only if the session's status and counters are still those of the view;
    the balance comes back from the write itself). A miss, or a guarded write that finds the session
    changed (NetFlow, another tab, the worker), reads afresh. Bounded in size and age: a view the
    database has not confirmed for `ttl` is read again.

    It also holds the heartbeats billed in memory and not yet written (`hold`): at most one per session,
    the latest, since each restates the cumulative online time. Thread-safe: the process's writer thread
    takes them (`held`) while requests add more.
    """

    capacity: int = 50_000
    ttl: timedelta = timedelta(seconds=120)
    _views: OrderedDict[str, _Kept] = field(default_factory=OrderedDict)
    _held: set[str] = field(default_factory=set)  # tokens whose kept entry holds a heartbeat
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(
        self, token: str, now: datetime, max_age: timedelta | None = None, seen_since: datetime | None = None
    ) -> tuple[SessionView, HeldHeartbeat | None] | None:
        """The kept view and the heartbeat held on it, if the database confirmed the view within `ttl`
        (and `max_age`), and not before `seen_since`."""
        with self._lock:
            kept = self._views.get(token)
            if kept is None or now - kept.seen_at > min(self.ttl, max_age or self.ttl):
                return None
            if seen_since is not None and kept.seen_at < seen_since:
                return None
            return kept.view, kept.held

    def put(self, view: SessionView, now: datetime) -> None:
        """Keep `view` as written or read at `now` (it supersedes a heartbeat held in memory)."""
        with self._lock:
            self._views[view.token] = _Kept(now, view)
            self._views.move_to_end(view.token)
            self._held.discard(view.token)
            while len(self._views) > self.capacity:  # the least recent: a heartbeat of theirs is long written
                token, _ = self._views.popitem(last=False)
                self._held.discard(token)

    def forget(self, token: str) -> None:
        with self._lock:
            self._views.pop(token, None)
            self._held.discard(token)

    def hold(self, heartbeat: HeldHeartbeat) -> None:
        """Keep a heartbeat billed in memory until `written` confirms it (it replaces an earlier one)."""
        token = heartbeat.base.token
        with self._lock:
            kept = self._views.get(token)
            if kept is not None and (kept.held is None or kept.held.at <= heartbeat.at):
                kept.held = heartbeat
                self._views.move_to_end(token)
                self._held.add(token)

    def has_held(self) -> bool:
        return bool(self._held)

    def held(self) -> list[tuple[SessionView, HeldHeartbeat]]:
        """The heartbeats held in memory, each with the view now kept for its session."""
        with self._lock:
            beats = []
            for token in self._held:
                kept = self._views[token]
                assert kept.held is not None, "only sessions with a held heartbeat are listed"
                beats.append((kept.view, kept.held))
            return beats

    def written(self, before: SessionView, after: SessionView | None, heartbeat: HeldHeartbeat) -> None:
        """`heartbeat`, written on `before`, left the session as `after` (None: given up, read it again).

        A later heartbeat held meanwhile stays held (it is written next time, on `after`).
        """
        token = before.token
        with self._lock:
            kept = self._views.get(token)
            if kept is None or kept.view is not before:
                return
            if after is None:
                del self._views[token]
                self._held.discard(token)
                return
            kept.view, kept.seen_at = after, heartbeat.at
            if kept.held is heartbeat:
                kept.held = None
                self._held.discard(token)


def keep_alive_without_lock(
    session: Executor,
    tariffs: TariffCache,
    hotspot: PortalHotspot,
    token: str,
    now: datetime,
    signal: Signal,
    recent: RecentViews | None = None,
    *,
    defer: bool = False,
    seen_since: datetime | None = None,
) -> PortalStatus | None:
    """`keep_alive` for the common case: one guarded write after the view `recent` kept, else one read
    and one guarded write. With `defer`, the heartbeat is billed in memory instead of written (no round
    trip on a kept view, one read otherwise), and `write_deferred_heartbeats` writes it soon after with
    the others. A view kept from before `seen_since` is not used (the money moved since, elsewhere).

    Meant for a connection in autocommit mode (no BEGIN/COMMIT round trips). None when this path does
    not apply (the session must be closed for its silence, or it changed between the read and the
    write): use `keep_alive` in a transaction instead.
    """
    if recent is not None and hotspot.counts_as_heartbeat(signal):
        # A page beats every third of the timeout: a view older than half of it means the last heartbeat
        # went to another process (its write would make ours fail): read afresh instead.
        kept = recent.get(token, now, timedelta(seconds=hotspot.heartbeat_timeout / 2), seen_since)
        if kept is not None:
            view, held = kept
            last = held.at if held is not None else last_sign_of_life(view)
            if view.status == "open" and not _silent_too_long(hotspot, last, now):
                if defer:
                    return _held_heartbeat(session, tariffs, hotspot, view, now, recent)
                status = _sign_of_life(session, tariffs, hotspot, view, now, signal, recent)
                if status is not None:
                    return status
                recent.forget(token)  # changed meanwhile: read afresh (and write at `now`, past what it held)
    # A heartbeat held in memory for a session closed here for its silence stays held: the locked way
    # writes it first (`unit_of_work`), so the session ends at that heartbeat, not at the one before.
    view = sessions.session_view(session, token)
    if view.source == "portal" and heartbeat_expired(hotspot, view, now):
        return None
    if defer and recent is not None and view.status == "open" and hotspot.counts_as_heartbeat(signal):
        recent.put(view, now)  # the guest's last heartbeat went to another process: start from this read
        return _held_heartbeat(session, tariffs, hotspot, view, now, recent)
    return _sign_of_life(session, tariffs, hotspot, view, now, signal, recent)


def _held_heartbeat(
    session: Executor,
    tariffs: TariffCache,
    hotspot: PortalHotspot,
    view: SessionView,
    now: datetime,
    recent: RecentViews,
) -> PortalStatus:
    """A heartbeat on the kept `view`, billed in memory (time only: `apply_heartbeats` refuses a write that
    moves traffic counters, and a heartbeat's never does)."""
    write = sessions.heartbeat_write(session, tariffs, view, now)
    billed = sessions.view_after_heartbeat(view, write, now, view.balance - write.time_debit)
    recent.hold(HeldHeartbeat(view, write, billed, now))
    return _portal_status(hotspot, sessions.status_of(session, tariffs, billed, now), now)


def write_deferred_heartbeats(session: Executor, tariffs: TariffCache, recent: RecentViews, now: datetime) -> int:
    """Write the heartbeats `recent` holds in memory, all in one statement; returns how many there were.

    A session that changed since its view was kept (NetFlow, accounting, a logout, or — most often — the
    guest's previous heartbeat, which another process wrote) fails its write's guard: all such sessions
    are read afresh together and their heartbeats written in a second statement, so the time they mark
    is not lost; one that ended meanwhile is dropped. A database error leaves them all held for the next
    call.
    """
    waiting = recent.held()
    pending = [_Pending(view, heartbeat, view) for view, heartbeat in waiting]
    for rounds_left in reversed(range(HEARTBEAT_WRITE_ROUNDS)):
        if not pending:
            break
        changed = _write_heartbeats(session, tariffs, recent, pending, now)
        tokens = [p.kept.token for p in changed]
        fresh = sessions_db.session_views_by_tokens(session, tokens) if tokens and rounds_left else {}
        pending = []
        for p in changed:
            view = fresh.get(p.kept.token)
            if view is not None and view.status == "open":
                pending.append(_Pending(p.kept, p.heartbeat, view))
            else:  # ended meanwhile, or changed under every try: the guest's next heartbeat reads it again
                recent.written(p.kept, None, p.heartbeat)
    return len(waiting)


@dataclass(frozen=True)
class _Pending:
    """A held heartbeat to write on `on`: the view kept for its session, or a fresh read of it."""

    kept: SessionView
    heartbeat: HeldHeartbeat
    on: SessionView


def _write_heartbeats(
    session: Executor, tariffs: TariffCache, recent: RecentViews, pending: list[_Pending], now: datetime
) -> list[_Pending]:
    """One statement for all `pending`; tells `recent` of each written, returns those whose session changed."""
    beats = []
    for p in pending:
        # as computed when it was held, unless the view it was computed on has moved since
        same_base = p.heartbeat.base is p.on
        write = p.heartbeat.write if same_base else sessions.heartbeat_write(session, tariffs, p.on, p.heartbeat.at)
        beats.append(sessions_db.HeartbeatWrite(p.on, write, p.heartbeat.at))
    balances = sessions_db.apply_heartbeats(session, beats, now)
    changed = []
    for p, beat in zip(pending, beats, strict=True):
        balance = balances.get(p.on.id)
        if balance is None:
            changed.append(p)
            continue
        after = p.heartbeat.billed
        if p.heartbeat.base is not p.on or after.balance != balance:
            after = sessions.view_after_heartbeat(p.on, beat.write, p.heartbeat.at, balance)
        recent.written(p.kept, after, p.heartbeat)
    return changed


def _silent_too_long(hotspot: PortalHotspot, last: datetime, now: datetime) -> bool:
    return hotspot.heartbeat_required and now - last > timedelta(seconds=hotspot.heartbeat_timeout)


def _sign_of_life(
    session: Executor,
    tariffs: TariffCache,
    hotspot: PortalHotspot,
    view: SessionView,
    now: datetime,
    signal: Signal,
    recent: RecentViews | None = None,
) -> PortalStatus | None:
    """Bill the heartbeat if the signal counts as one, else only report; None: the session changed."""
    if hotspot.counts_as_heartbeat(signal):
        billed = sessions.billed_heartbeat_view(session, tariffs, view, now)
        if billed is None:
            return None
        if recent is not None and billed.status == "open":
            recent.put(billed, now)
        return _portal_status(hotspot, sessions.status_of(session, tariffs, billed, now), now)
    return _portal_status(hotspot, sessions.status_of(session, tariffs, view, now), last_sign_of_life(view))


def _portal_status(hotspot: PortalHotspot, status: SessionStatus, last: datetime) -> PortalStatus:
    """The status with when the session ends unless another heartbeat arrives after `last`."""
    cut_at = last + timedelta(seconds=hotspot.heartbeat_timeout) if hotspot.heartbeat_required else None
    return PortalStatus(status, cut_at if status.open else None)


def abandon_session(session: Session, token: str) -> None:
    """A login whose gate never opened: closed at its start, so nothing is billed for it."""
    row = sessions_db.session_by_token(session, token, lock=True)
    if row is not None and row.status != "closed":
        sessions_db.update_session(
            session, row.id, status="closed", stopped_at=row.started_at, terminate_cause=GATE_FAILED_CAUSE
        )


def top_up(
    session: Session,
    vault: PinVault,
    policy: Policy,
    *,
    hotspot: PortalHotspot,
    token: str,
    source_text: str,
    pin: str,
    client_ip: str,
    now: datetime,
) -> cards.TopUp:
    """Move a second card's value onto the logged-in guest's card, under the same lockout as logins.

    A top-up form takes a card number and a PIN, so it is a way to guess PINs: every attempt is recorded
    (wrong PINs and unknown numbers count towards the client's lockout, wrong PINs towards the card's),
    against the client of the guest's session (its MAC, else its address; `client_ip` if it has neither),
    and a locked-out card or client is refused before its PIN is checked. The caller commits, also after
    a refusal.
    """
    row = sessions_db.session_by_token(session, token)
    if row is None:
        raise NotFound("no such session (it may have ended)")
    framed_ip = str(row.framed_ip) if row.framed_ip is not None else None
    client = client_identity(row.calling_station_id, framed_ip or client_ip)
    try:
        number = normalise_card_number(source_text)
    except CardNumberError as exc:
        raise CardRefused(Refusal.BAD_CARD_NUMBER, str(exc)) from None
    if number == row.card_number:
        raise ServiceError("a card cannot top itself up")
    try:
        snapshot = sessions_db.login_snapshot(
            session,
            number=number,
            nas_ip=None,
            hotspot_id=hotspot.id,
            client=client,
            now=now,
            lockout_window_s=policy.lockout_window_s,
            pending_ttl_s=policy.pending_session_ttl_s,
        )
        if max(snapshot.card_failures, snapshot.client_failures) >= policy.lockout_attempts:
            raise CardRefused(Refusal.LOCKED_OUT)
        with session.begin_nested():
            result = cards.top_up(session, vault, row.card_number, number, pin, now)
    except CardRefused as refused:
        _record(session, number, client, hotspot, refused.refusal, now)
        raise
    _record(session, number, client, hotspot, None, now)
    if hotspot.mode == "radius":  # the NAS still holds the old Session-Timeout and data cap
        enforcement_db.queue_coa(session, token, now)
    return result


def end_at_nas(session: Session, token: str, now: datetime) -> bool:
    """RADIUS mode: the guest logged out on the portal, so `hotspotctl worker` sends the NAS a
    Disconnect-Request at once (the commit wakes it: the portal does no RADIUS I/O itself, and the
    worker's retries and records apply); the NAS's Accounting-Stop then closes the session, billed to
    that moment, as `User-Request`. False: the session had already ended."""
    return enforcement_db.queue_logout(session, token, now)


def check_credentials(
    session: Session,
    vault: PinVault,
    tariffs: TariffCache,
    policy: Policy,
    *,
    hotspot: PortalHotspot,
    card_text: str,
    pin: str,
    client: str | None,
    now: datetime,
) -> Grant:
    """RADIUS mode, before the credentials go to the NAS: refuse here, in the guest's language, what
    RADIUS would refuse (a refusal is recorded, so wrong PINs count; the NAS's own login records success)."""
    request = LoginRequest(card_text=card_text, source="portal", hotspot_id=hotspot.id, client=client, pin=pin)
    try:
        return decide_login(session, vault, tariffs, policy, request, now)
    except CardRefused as refused:
        record_attempt(
            session,
            card_text=card_text,
            client=client,
            hotspot_id=hotspot.id,
            source="portal",
            outcome=refused.refusal,
            now=now,
        )
        raise


def take_over(
    session: Session,
    vault: PinVault,
    tariffs: TariffCache,
    policy: Policy,
    *,
    hotspot: PortalHotspot,
    card_text: str,
    pin: str,
    client_ip: str,
    client: str | None,
    now: datetime,
) -> str | None:
    """The token of the open session this client address holds with this card, once its PIN is checked
    (`client`: the guest as the lockout names them).

    A guest whose captive-portal window closed opens the status page in the real browser, which has no
    cookie: a login there would be refused as "in use on another device", although it is the same device
    (the gate, or the NAS, knows it by this address — the RFC 8908 API maps it the same way). So the
    address that owns the card's open session takes that session over, with the card's PIN, under the
    same rules and lockout as a login. None: this address holds no open session of this card (log in as
    usual). CardRefused: the PIN or the card's state refuses it (recorded; the caller commits).
    """
    token = live_token_for_client(session, hotspot, client_ip)
    if token is None:
        return None
    try:
        number = normalise_card_number(card_text)
    except CardNumberError:
        return None
    view = sessions.session_view(session, token)
    if view.card_number != number:
        return None
    request = LoginRequest(card_text=number, source="portal", hotspot_id=hotspot.id, client=client, pin=pin)
    try:
        decide_login(session, vault, tariffs, policy, request, now)
    except CardRefused as refused:
        if refused.refusal is not Refusal.TOO_MANY_SESSIONS:  # that is this very session: every other rule passed
            _record(session, number, client, hotspot, refused.refusal, now)
            raise
    _record(session, number, client, hotspot, None, now)
    return token


def _record(
    session: Session, number: str, client: str | None, hotspot: PortalHotspot, outcome: Refusal | None, now: datetime
) -> None:
    record_attempt(
        session, card_text=number, client=client, hotspot_id=hotspot.id, source="portal", outcome=outcome, now=now
    )


def live_token_for_client(session: Executor, hotspot: PortalHotspot, ip: str) -> str | None:
    return q.live_token_for_client(session, hotspot.id, ip)


def live_token_for_card(session: Executor, hotspot: PortalHotspot, card_number: str) -> str | None:
    return q.live_token_for_card(session, hotspot.id, card_number)


def nas_has_started(session: Executor, hotspot: PortalHotspot, card_number: str) -> bool:
    """Whether the NAS's Accounting-Start has opened the card's live session: radiusd's Access-Accept
    alone leaves it pending, and the NAS may send the guest back before its Start arrives."""
    return q.live_status_for_card(session, hotspot.id, card_number) == "open"
