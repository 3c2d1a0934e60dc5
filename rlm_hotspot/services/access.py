"""Logins: the one decision shared by the RADIUS hooks and the portal.

A login is decided from one snapshot query (card, batch, account, hotspot, NAS, live sessions, recent
wrong PINs). Every refusal has its own reason, and every rule is decided here, once, for RADIUS and the
portal alike: the database decides only what must be decided under the card lock, whether a RADIUS login
gets a simultaneous-use slot (sql/024). What an accepted login may use — Session-Timeout and data
cap — is computed from the *remaining* balance with the hotspot's tariff, walking the time-of-day bands,
and bounded by the card's effective deadline.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from rlm_hotspot.core.cardcode import CardNumberError, normalise_card_number
from rlm_hotspot.core.clients import client_identity
from rlm_hotspot.core.decisions import Refusal
from rlm_hotspot.core.tariff import Meter, bytes_affordable, seconds_affordable
from rlm_hotspot.core.validity import effective_deadline, seconds_left
from rlm_hotspot.db import lockouts
from rlm_hotspot.db import sessions as q
from rlm_hotspot.pins import ChapAnswer, PinVault
from rlm_hotspot.services.cards import usable_refusal, validity_of
from rlm_hotspot.services.errors import CardRefused, ServiceError
from rlm_hotspot.services.tariff_cache import TariffCache


@dataclass(frozen=True)
class Policy:
    """Installation-wide login rules (from the settings file)."""

    lockout_attempts: int = 5
    lockout_window_s: int = 900
    pending_session_ttl_s: int = 120


@dataclass(frozen=True)
class LoginRequest:
    """A login attempt as an adapter decoded it."""

    card_text: str
    source: str  # 'radius' or 'portal'
    nas_ip: str | None = None  # RADIUS: the NAS decides the hotspot
    hotspot_id: int | None = None  # portal: the hotspot it serves
    client: str | None = None  # the lockout's name for the client (core.clients.client_identity)
    pin: str | None = None  # PAP and the portal: checked here
    chap: ChapAnswer | None = None  # RADIUS CHAP: checked here against the revealed PIN (chap checks it again)


@dataclass(frozen=True)
class Grant:
    """An accepted login and what it may use."""

    card_id: int
    card_number: str
    account_id: int | None
    balance: int
    hotspot_id: int
    nas_id: int | None
    nas_vendor: str | None
    tariff_id: int
    session_timeout: int
    data_cap: int | None  # bytes; None = traffic is not capped (free, or not metered by RADIUS)
    deadline: datetime | None
    interim_interval: int
    idle_timeout: int | None
    rate_up_kbps: int | None
    rate_down_kbps: int | None
    pin: str | None  # the cleartext PIN for pap/chap (encrypted mode), else None


class UnknownPlace(RuntimeError):
    """The request came from a NAS (or for a hotspot) the database does not know: a setup fault."""


def decide_login(
    db: Session, vault: PinVault, tariffs: TariffCache, policy: Policy, request: LoginRequest, now: datetime
) -> Grant:
    """Accept or refuse (CardRefused) a login; read-only, one query (plus a cached tariff)."""
    snap = q.login_snapshot(
        db,
        number=_card_number(request.card_text),
        nas_ip=request.nas_ip,
        hotspot_id=request.hotspot_id,
        client=request.client,
        now=now,
        lockout_window_s=policy.lockout_window_s,
        pending_ttl_s=policy.pending_session_ttl_s,
    )
    return _grant(db, snap, vault, tariffs, policy, request, now)


# A RADIUS login takes two hook calls with radiusd's own database call between them (the virtual server
# `hotspot`, freeradius-config/): radiusd runs the python3 module's hooks one at a time, so the round trip is
# made by an rlm_sql instance from radiusd's thread pool, and the hook calls only do pure work.


class RadiusRefused(CardRefused):
    """A refused RADIUS login, and what radiusd's Post-Auth-Type REJECT records for it.

    `record` holds the arguments of radius_login_refused (sql/010): give back the slot the database call
    took, or record a login refused before any slot was taken.
    """

    def __init__(self, refused: CardRefused, record: str) -> None:
        super().__init__(refused.refusal, str(refused))
        self.record = record


@dataclass(frozen=True)
class RadiusLogin:
    """An accepted RADIUS login: what it may use, its Class token, and how to undo it if chap refuses the PIN."""

    grant: Grant
    token: str
    # CHAP only: radius_login_refused's arguments (give the slot back, record a wrong PIN); PAP has no second check
    refused_by_chap: str | None


def radius_login_call(
    request: LoginRequest,
    policy: Policy,
    *,
    token: str,
    username: str,
    calling_station_id: str | None,
    now: datetime,
) -> str:
    """The first hook call (no I/O): the arguments of the login's database call (radius_login_json, sql/024).

    The check digit refuses a typo here, before any query (RadiusRefused).
    """
    try:
        number = _card_number(request.card_text)
    except CardRefused as refused:
        outcome = refused.refusal.value
        number_or_text = _number_or_text(request.card_text)
        record = q.radius_refusal(
            outcome, number=number_or_text, client=request.client, hotspot_id=None, at=now, session_id=None
        )
        raise RadiusRefused(refused, record) from None
    return q.RadiusLoginCall(
        number=number,
        nas_ip=str(request.nas_ip),
        client=request.client,
        at=now,
        window=policy.lockout_window_s,
        pending_ttl=policy.pending_session_ttl_s,
        token=token,
        username=username,
        calling_station_id=calling_station_id,
    ).encode()


def decide_radius_login(
    db: Session,
    vault: PinVault,
    tariffs: TariffCache,
    policy: Policy,
    request: LoginRequest,
    result: str,
) -> RadiusLogin:
    """The second hook call: decide on what the database call returned (`result`).

    The database locked the card, read the snapshot and reserved a slot when the card had one left
    (sql/024: two Access-Requests for one card at the same instant, on any number of radiusd servers,
    serialise on the card row, so exactly `simultaneous_use` of them get a slot). The rules below decide
    everything else; a refusal raises RadiusRefused, and radiusd records it (giving the slot back). `db` is used only
    when a tariff's cache entry is stale. A CHAP response is checked here, against the revealed PIN, before
    the card's state is told; radiusd's chap checks it again (`refused_by_chap`).
    """
    login = q.parse_radius_login(result)
    snap, session_id = login.snapshot, login.reserved_session_id

    def record(refusal: Refusal) -> str:
        return q.radius_refusal(
            refusal.value, number=login.number, client=request.client, hotspot_id=snap.hotspot_id, at=login.at,
            session_id=session_id,
        )  # fmt: skip

    try:
        grant = _grant(db, snap, vault, tariffs, policy, request, login.at)
        if session_id is None:  # every rule passed, yet no slot: taken by a concurrent login
            raise CardRefused(Refusal.TOO_MANY_SESSIONS)
    except CardRefused as refused:
        raise RadiusRefused(refused, record(refused.refusal)) from None
    return RadiusLogin(grant, login.token, record(Refusal.WRONG_PIN) if request.pin is None else None)


def _card_number(card_text: str) -> str:
    """The normalised card number; the check digit refuses a typo before any query."""
    try:
        return normalise_card_number(card_text)
    except CardNumberError as exc:
        raise CardRefused(Refusal.BAD_CARD_NUMBER, str(exc)) from None


def _grant(
    db: Session,
    snap: q.LoginSnapshot,
    vault: PinVault,
    tariffs: TariffCache,
    policy: Policy,
    request: LoginRequest,
    now: datetime,
) -> Grant:
    """The login rules over a snapshot, in the order a guest should hear them."""
    if snap.hotspot_id is None:
        raise UnknownPlace(
            f"no NAS with address {request.nas_ip} in the database"
            if request.nas_ip
            else f"no hotspot with id {request.hotspot_id}"
        )
    refuse_locked_out(snap, policy)
    if snap.card_id is None:
        raise CardRefused(Refusal.UNKNOWN_CARD)
    assert snap.pin_secret is not None and snap.pin_key_id is not None and snap.number is not None
    # The PIN first: only who knows it learns the card's state (blocked, expired, in use...)
    pin = None
    if request.pin is not None:
        if not vault.verify(snap.number, request.pin, snap.pin_key_id, snap.pin_secret):
            raise CardRefused(Refusal.WRONG_PIN)
    else:
        pin = vault.reveal(snap.number, snap.pin_key_id, snap.pin_secret)
        if pin is None:  # CHAP needs the cleartext, a hashed PIN has none
            raise CardRefused(Refusal.PAP_ONLY)
        if request.chap is not None and not request.chap.matches(pin):
            raise CardRefused(Refusal.WRONG_PIN)
    refusal = _card_refusal(snap, now)
    if refusal is not None:
        raise CardRefused(refusal)
    tariff = tariffs.get(db, snap.batch_tariff_id or snap.hotspot_tariff_id, now)  # type: ignore[arg-type]
    if snap.live_sessions >= tariff.spec.simultaneous_use:
        raise CardRefused(Refusal.TOO_MANY_SESSIONS)
    balance = snap.face_value if snap.status == "new" else (snap.balance or 0)
    assert balance is not None
    validity = validity_of(snap)
    deadline = effective_deadline(validity, snap.activated_at, now)
    tz = ZoneInfo(snap.hotspot_timezone or "UTC")
    horizon = seconds_left(deadline, now, snap.max_session_seconds or 86400)
    timeout = seconds_affordable(tariff.tariff, tz, now, Meter(), balance, horizon)
    if timeout <= 0:
        raise CardRefused(Refusal.EXHAUSTED if deadline is None or deadline > now else Refusal.EXPIRED)
    data_cap = bytes_affordable(tariff.tariff, tz, now, Meter(), balance) if snap.traffic_meter == "radius" else None
    return Grant(
        card_id=snap.card_id,
        card_number=snap.number,
        account_id=snap.account_id,
        balance=balance,
        hotspot_id=snap.hotspot_id,
        nas_id=snap.nas_id,
        nas_vendor=snap.nas_vendor,
        tariff_id=tariff.id,
        session_timeout=timeout,
        data_cap=data_cap,
        deadline=deadline,
        interim_interval=snap.interim_interval or 300,
        idle_timeout=snap.idle_timeout,
        rate_up_kbps=tariff.spec.rate_up_kbps,
        rate_down_kbps=tariff.spec.rate_down_kbps,
        pin=pin,
    )


def refuse_locked_out(snap: q.LoginSnapshot, policy: Policy) -> None:
    """The lockout, before anything else is told: too many wrong PINs for the card number, or too many
    guesses (wrong PINs, unknown numbers) from the client, within the window (CardRefused)."""
    if max(snap.card_failures, snap.client_failures) >= policy.lockout_attempts:
        raise CardRefused(Refusal.LOCKED_OUT)


def _card_refusal(snap: q.LoginSnapshot, now: datetime) -> Refusal | None:
    refusal = usable_refusal(snap, now)
    if refusal is None and snap.batch_hotspot_id is not None and snap.batch_hotspot_id != snap.hotspot_id:
        return Refusal.WRONG_HOTSPOT
    return refusal


def new_token() -> str:
    """An unguessable session token (RADIUS Class, portal cookie)."""
    return secrets.token_urlsafe(18)


def record_attempt(
    db: Session,
    *,
    card_text: str,
    client: str | None,
    hotspot_id: int | None,
    source: str,
    outcome: Refusal | None,
    now: datetime,
) -> None:
    """Remember a login's outcome: wrong PINs drive the lockout, all of it is visible to admins."""
    q.record_attempt(
        db,
        card_number=_number_or_text(card_text),
        client=client,
        hotspot_id=hotspot_id,
        source=source,
        outcome="ok" if outcome is None else outcome.value,
        now=now,
    )


def _number_or_text(card_text: str) -> str:
    try:
        return normalise_card_number(card_text)
    except CardNumberError:
        return card_text.strip()[:40]


def list_lockouts(db: Session, policy: Policy, now: datetime) -> list[dict[str, object]]:
    """Who cannot log in right now: card numbers after wrong PINs, clients after wrong PINs and unknown
    card numbers."""
    return lockouts.locked_out(db, now, policy.lockout_window_s, policy.lockout_attempts)


def clear_lockout(
    db: Session,
    now: datetime,
    *,
    card_text: str | None = None,
    client: str | None = None,
    policy: Policy | None = None,
) -> str | None:
    """Lift a lockout before its time; returns what was cleared (for the admin's confirmation). With
    `policy`: None, and nothing written, when that card number or client is not locked out now."""
    if (card_text is None) == (client is None):
        raise ServiceError("name exactly one card number or one client")
    if card_text is not None:
        kind, subject = "card", _number_or_text(card_text)
    else:
        kind, subject = "client", client_identity(client, None)  # type: ignore[assignment]  # not None: asserted next
        assert subject is not None
    if policy is not None:
        locked = {(row["kind"], row["subject"]) for row in list_lockouts(db, policy, now)}
        if (kind, subject) not in locked:
            return None
    lockouts.clear(db, kind=kind, subject=subject, now=now)
    return f"{kind} {subject}"
