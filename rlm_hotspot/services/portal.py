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

A heartbeat is three acts, named once: **mark** a sign of life, **rate** it (the meter write its online
time makes) and **post** it (write that to the database). These are the stateless rules; what a portal
process keeps across requests to post cheaply (its recent views, heartbeats rated in memory, the poster
thread) is `portal.heartbeats`.
"""

from __future__ import annotations

from dataclasses import dataclass
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
from rlm_hotspot.db.sessions import SessionView
from rlm_hotspot.pins import PinVault
from rlm_hotspot.services import cards, sessions
from rlm_hotspot.services.access import Grant, LoginRequest, Policy, decide_login, record_attempt, refuse_locked_out
from rlm_hotspot.services.errors import CardRefused, NotFound, ServiceError
from rlm_hotspot.services.gate_time import bill_open_time
from rlm_hotspot.services.sessions import SessionStatus
from rlm_hotspot.services.tariff_cache import TariffCache

HEARTBEAT_TIMEOUT_CAUSE = TERMINATE_CAUSES[Silence.STOPPED]
SILENCE_CAUSES = frozenset(TERMINATE_CAUSES.values())  # the session ended under the heartbeat rule
GATE_FAILED_CAUSE = "Gate-Failed"


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

    def silent_too_long(self, last_sign_of_life: datetime, now: datetime) -> bool:
        """The hot path's cheap test: silent for longer than the timeout (the hidden grace needs a read)."""
        return self.heartbeat_required and now - last_sign_of_life > timedelta(seconds=self.heartbeat_timeout)


@dataclass(frozen=True)
class PortalStatus:
    """A session's status plus when it ends unless another heartbeat arrives (None: it does not)."""

    status: SessionStatus
    cut_at: datetime | None


def portal_hotspot(db: Executor, name: str) -> PortalHotspot:
    row = q.hotspot_by_name(db, name)
    if row is None:
        raise NotFound(f"no hotspot {name!r}: create it with `hotspotctl hotspot add`")
    return PortalHotspot(**row._mapping)


def set_terms_of_use(db: Session, hotspot_name: str, terms: str | None) -> None:
    """Require guests of a hotspot to accept these terms before logging in (None: no terms)."""
    hotspot = portal_hotspot(db, hotspot_name)
    q.set_terms_of_use(db, hotspot.id, terms.strip() if terms and terms.strip() else None)


def last_sign_of_life(view: SessionView) -> datetime:
    return view.last_heartbeat_at or view.started_at


def heartbeat_expired(hotspot: PortalHotspot, view: SessionView, now: datetime) -> bool:
    """Whether the session may have ended under the heartbeat rule: silent for longer than the timeout.

    The cheap test of the hot path (no page state read). A page in the background may still be within its
    hidden grace: `mark_sign_of_life` decides, under the row lock, with what the page last said.
    """
    return view.status != "closed" and hotspot.silent_too_long(last_sign_of_life(view), now)


def silence_deadline(db: Executor, hotspot: PortalHotspot, view: SessionView) -> Deadline | None:
    """The session's deadline under the heartbeat rule, with what its page last said (one read)."""
    state, state_at = page_state_db.page_state(db, view.id)
    return heartbeat_deadline(hotspot.rule, last_sign_of_life(view), state, state_at)


def heartbeat_cut_at(db: Executor, hotspot: PortalHotspot, view: PortalStatus) -> datetime | None:
    """When the worker will cut the session unless another sign of life comes: `view.cut_at` counts the
    timeout from the last sign of life, but a page that said it went to the background gets the hidden
    grace and one that said it was closed ends soon after — the full rule, with what the page said (one
    read). None: no heartbeat rule, or the session has ended."""
    if view.cut_at is None:
        return None
    last = view.cut_at - timedelta(seconds=hotspot.heartbeat_timeout)  # what cut_at was counted from
    state, state_at = page_state_db.page_state(db, view.status.session_id)
    deadline = heartbeat_deadline(hotspot.rule, last, state, state_at)
    return None if deadline is None else deadline.at


def mark_sign_of_life(
    db: Session, tariffs: TariffCache, hotspot: PortalHotspot, token: str, now: datetime, signal: Signal
) -> PortalStatus:
    """Mark a sign of life from the guest: rate and post a heartbeat when the hotspot's rule says it counts.

    In a transaction, under the session's row lock. A standalone session already past its deadline is
    closed instead (the worker would have done it), billed up to now: its gate was open until now.
    RADIUS sessions are the NAS's to end: the worker sends the Disconnect-Request, the portal only reports.
    """
    view = sessions.session_view(db, token, lock=True)
    if view.source == "portal" and view.status == "open":
        deadline = silence_deadline(db, hotspot, view)
        if deadline is not None and now > deadline.at:
            bill_open_time(db, tariffs, view, now)
            sessions_db.update_session(
                db, view.id, status="closed", stopped_at=now, terminate_cause=TERMINATE_CAUSES[deadline.silence]
            )
            return PortalStatus(sessions.session_status(db, tariffs, token, now), None)
    marked = mark_on_view(db, tariffs, hotspot, view, now, signal)
    assert marked is not None, "the row is locked: nothing can have changed it"
    return marked.status


def mark_page_state(db: Executor, token: str, state: PageState | None, now: datetime) -> bool:
    """Mark what the guest's status page says about itself (Page Lifecycle), after its sign of life:
    hidden, closed, or visible again (None). False when the session has ended."""
    return page_state_db.mark_page_state(db, token, state, now)


@dataclass(frozen=True)
class Marked:
    """A sign of life marked on a session: what the guest is shown, and the session as it left it
    (`posted`: a heartbeat was rated and posted, so `view` is what the database now holds)."""

    status: PortalStatus
    view: SessionView
    posted: bool


def mark_on_view(
    db: Executor, tariffs: TariffCache, hotspot: PortalHotspot, view: SessionView, now: datetime, signal: Signal
) -> Marked | None:
    """Mark a sign of life on the session read as `view`: rate and post a heartbeat if the signal counts as
    one, else only report. None: the session changed since `view` was read (possible only without the row
    lock: the caller then takes the lock and tries again)."""
    if hotspot.counts_as_heartbeat(signal):
        posted = sessions.post_heartbeat_on(db, tariffs, view, now)
        if posted is None:
            return None
        return Marked(portal_status(hotspot, sessions.status_of(db, tariffs, posted, now), now), posted, True)
    status = portal_status(hotspot, sessions.status_of(db, tariffs, view, now), last_sign_of_life(view))
    return Marked(status, view, False)


def portal_status(hotspot: PortalHotspot, status: SessionStatus, last: datetime) -> PortalStatus:
    """The status with when the session ends unless another heartbeat arrives after `last`."""
    cut_at = last + timedelta(seconds=hotspot.heartbeat_timeout) if hotspot.heartbeat_required else None
    return PortalStatus(status, cut_at if status.open else None)


def abandon_session(db: Session, token: str) -> None:
    """A login whose gate never opened: closed at its start, so nothing is billed for it."""
    row = sessions_db.session_by_token(db, token, lock=True)
    if row is not None and row.status != "closed":
        sessions_db.update_session(
            db, row.id, status="closed", stopped_at=row.started_at, terminate_cause=GATE_FAILED_CAUSE
        )


def top_up(
    db: Session,
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
    row = sessions_db.session_by_token(db, token)
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
            db,
            number=number,
            nas_ip=None,
            hotspot_id=hotspot.id,
            client=client,
            now=now,
            lockout_window_s=policy.lockout_window_s,
            pending_ttl_s=policy.pending_session_ttl_s,
        )
        refuse_locked_out(snapshot, policy)
        with db.begin_nested():
            result = cards.top_up(
                db, vault, row.card_number, number, pin, now, pending_ttl_s=policy.pending_session_ttl_s
            )
    except CardRefused as refused:
        _record(db, number, client, hotspot, refused.refusal, now)
        raise
    _record(db, number, client, hotspot, None, now)
    if hotspot.mode == "radius":  # the NAS still holds the old Session-Timeout and data cap
        enforcement_db.queue_coa(db, token, now)
    return result


def end_at_nas(db: Session, token: str, now: datetime) -> bool:
    """RADIUS mode: the guest logged out on the portal, so `hotspotctl worker` sends the NAS a
    Disconnect-Request at once (the commit wakes it: the portal does no RADIUS I/O itself, and the
    worker's retries and records apply); the NAS's Accounting-Stop then closes the session, billed to
    that moment, as `User-Request`. False: the session had already ended."""
    return enforcement_db.queue_logout(db, token, now)


def check_credentials(
    db: Session,
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
        return decide_login(db, vault, tariffs, policy, request, now)
    except CardRefused as refused:
        record_attempt(
            db,
            card_text=card_text,
            client=client,
            hotspot_id=hotspot.id,
            source="portal",
            outcome=refused.refusal,
            now=now,
        )
        raise


def take_over(
    db: Session,
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
    token = live_token_for_client(db, hotspot, client_ip)
    if token is None:
        return None
    try:
        number = normalise_card_number(card_text)
    except CardNumberError:
        return None
    view = sessions.session_view(db, token)
    if view.card_number != number:
        return None
    request = LoginRequest(card_text=number, source="portal", hotspot_id=hotspot.id, client=client, pin=pin)
    try:
        decide_login(db, vault, tariffs, policy, request, now)
    except CardRefused as refused:
        if refused.refusal is not Refusal.TOO_MANY_SESSIONS:  # that is this very session: every other rule passed
            _record(db, number, client, hotspot, refused.refusal, now)
            raise
    _record(db, number, client, hotspot, None, now)
    return token


def _record(
    db: Session, number: str, client: str | None, hotspot: PortalHotspot, outcome: Refusal | None, now: datetime
) -> None:
    record_attempt(
        db, card_text=number, client=client, hotspot_id=hotspot.id, source="portal", outcome=outcome, now=now
    )


def live_token_for_client(db: Executor, hotspot: PortalHotspot, ip: str) -> str | None:
    return q.live_token_for_client(db, hotspot.id, ip)


def live_token_for_card(db: Executor, hotspot: PortalHotspot, card_number: str) -> str | None:
    return q.live_token_for_card(db, hotspot.id, card_number)


def nas_has_started(db: Executor, hotspot: PortalHotspot, card_number: str) -> bool:
    """Whether the NAS's Accounting-Start has opened the card's live session: radiusd's Access-Accept
    alone leaves it pending, and the NAS may send the guest back before its Start arrives."""
    return q.live_status_for_card(db, hotspot.id, card_number) == "open"
