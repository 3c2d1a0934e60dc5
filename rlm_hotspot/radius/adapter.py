"""The FreeRADIUS adapter: decode the pairs, call one billing service with `now`, encode the reply.

One RadiusAdapter lives in radiusd's embedded interpreter, made once by `instantiate`. Its methods are
the hook bodies; they never raise into radiusd. A refusal is a REJECT with its Reply-Message; an
infrastructure fault (database down, statement timeout) is FAIL plus a log line, and the next request
tries the database again (the pool pings before use), so service resumes by itself.

Hooks are serialized by radiusd (one call at a time in the one python3 instance), so the grants kept
between `authorize` and `post_auth` of a request need no lock.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from rlm_hotspot.core.decisions import Refusal
from rlm_hotspot.db.engine import make_engine
from rlm_hotspot.pins import PinVault
from rlm_hotspot.radius.decode import (
    Attributes,
    LoginPacket,
    MalformedPacket,
    decode_accounting,
    decode_login,
    event_time,
)
from rlm_hotspot.radius.encode import Item, accept_reply, reply_message
from rlm_hotspot.services.access import (
    Grant,
    LoginRequest,
    Policy,
    UnknownPlace,
    decide_login,
    new_token,
    record_attempt,
    reserve_radius_session,
)
from rlm_hotspot.services.catalog import currency
from rlm_hotspot.services.errors import CardRefused, ServiceError
from rlm_hotspot.services.sessions import AccountingRefused, record_accounting, record_accounting_without_lock
from rlm_hotspot.services.tariff_cache import NasCache, TariffCache
from rlm_hotspot.settings import Settings

HookResult = tuple[int, tuple[Item, ...] | None, tuple[Item, ...] | None]

# Control attribute that tells post_auth what authorize decided (the NAS cannot set control items).
MARKER = "Tmp-String-0"
GRANTED = "granted:"  # + token: authorize accepted; a Reject after it means pap/chap refused the PIN
REFUSED = "refused:"  # + Refusal value: authorize refused; post_auth records the attempt
RECORDED = "recorded"  # the attempt is already recorded
NOT_CONFIGURED = "This hotspot is not set up for card logins."
TRY_AGAIN = "Please try again."
CHAP_NEEDS_CLEARTEXT = "This card can only be used with a plain (PAP) password login."


class StartupError(RuntimeError):
    """The module cannot serve: bad settings, unreadable key file, unreachable or uninitialised database."""


@dataclass
class GrantsInFlight:
    """Grants between authorize and post_auth of one request, by the session token sent as Class."""

    ttl_s: float = 60.0
    _grants: dict[str, tuple[float, Grant]] = field(default_factory=dict)

    def put(self, token: str, grant: Grant) -> None:
        now = time.monotonic()
        for stale in [t for t, (at, _) in self._grants.items() if now - at > self.ttl_s]:
            del self._grants[stale]  # a request radiusd dropped between the two hooks
        self._grants[token] = (now, grant)

    def pop(self, token: str) -> Grant | None:
        entry = self._grants.pop(token, None)
        return None if entry is None else entry[1]


class RadiusAdapter:
    """The hook bodies, bound to the settings, engine and PIN keys made once at start-up."""

    def __init__(self, radiusd: ModuleType, settings: Settings, engine: Engine, vault: PinVault) -> None:
        self.rad = radiusd
        self.engine = engine
        # Single-statement work (the login snapshot, the slot reservation, the guarded accounting write)
        # runs on a connection of its own in autocommit: no BEGIN/COMMIT round trips, and hooks run one
        # at a time, so every round trip counts.
        self.autocommit = make_engine(
            settings, pool_size=1, application_name="rlm_hotspot", pre_ping=False, autocommit=True
        )
        self.vault = vault
        self.tariffs = TariffCache()
        self.nas = NasCache()
        self.policy = Policy(
            lockout_attempts=settings.lockout_attempts,
            lockout_window_s=settings.lockout_window_s,
            pending_session_ttl_s=settings.pending_session_ttl_s,
        )
        self.in_flight = GrantsInFlight()

    @classmethod
    def start(cls, radiusd: ModuleType, settings: Settings) -> RadiusAdapter:
        """Open the PIN keys and check the database once; side-effect free (also runs under `radiusd -C`)."""
        vault = PinVault.from_file(settings.pin_key_file)
        engine = make_engine(settings, pool_size=1, application_name="rlm_hotspot", pre_ping=False)
        try:
            with Session(engine) as session:
                currency(session)
        except ServiceError as exc:
            engine.dispose()
            raise StartupError(str(exc)) from None
        except SQLAlchemyError as exc:
            engine.dispose()
            raise StartupError(f"cannot use the database: {_first_line(exc)}") from None
        return cls(radiusd, settings, engine, vault)

    def close(self) -> None:
        self.engine.dispose()
        self.autocommit.dispose()

    # -- hooks -------------------------------------------------------------------------------------
    def authorize(self, lists: dict[str, Any]) -> HookResult:
        return self._guarded("authorize", self._authorize, lists)

    def post_auth(self, lists: dict[str, Any]) -> HookResult:
        return self._guarded("post_auth", self._post_auth, lists)

    def accounting(self, lists: dict[str, Any]) -> HookResult:
        return self._guarded("accounting", self._accounting, lists)

    def _guarded(self, hook: str, body: Callable[[dict[str, Any]], HookResult], lists: dict[str, Any]) -> HookResult:
        """Run a hook body; a database fault or a bug becomes FAIL and one log line, never an exception."""
        try:
            return body(lists)
        except (OperationalError, InterfaceError) as exc:  # down, unreachable, statement timeout
            self.log(self.rad.L_ERR, f"{hook}: database unavailable, answering FAIL: {_first_line(exc)}")
        except SQLAlchemyError as exc:
            self.log(self.rad.L_ERR, f"{hook}: database error, answering FAIL: {_first_line(exc)}")
        except Exception:
            self.log(self.rad.L_ERR, f"{hook}: internal error, answering FAIL: {traceback.format_exc()}")
        return self.rad.RLM_MODULE_FAIL, None, None

    def log(self, level: int, message: str) -> None:
        self.rad.radlog(level, f"rlm_hotspot: {message}")

    # -- authorize: decide, hand pap/chap the PIN to check ----------------------------------------
    def _authorize(self, lists: dict[str, Any]) -> HookResult:
        try:
            packet = decode_login(Attributes.of(lists.get("request")))
        except MalformedPacket as exc:
            self.log(self.rad.L_ERR, f"authorize: malformed Access-Request rejected: {exc}")
            return self.rad.RLM_MODULE_REJECT, reply_message("Invalid login request."), None
        request = LoginRequest(
            card_text=packet.card_text,
            source="radius",
            nas_ip=packet.nas_ip,
            client=packet.client,
            pin=packet.password,  # PAP: checked here in both PIN modes; CHAP: pin=None reveals it for chap
        )
        try:
            with Session(self.autocommit) as session:
                grant = decide_login(session, self.vault, self.tariffs, self.policy, request, _now())
        except CardRefused as refused:
            return self._refuse(refused.refusal, str(refused))
        except UnknownPlace as exc:
            self.log(self.rad.L_ERR, f"authorize: {exc}: add it with `hotspotctl nas add`")
            return self.rad.RLM_MODULE_REJECT, reply_message(NOT_CONFIGURED), None
        pin = packet.password if packet.password is not None else grant.pin
        if pin is None:  # CHAP for a card whose PIN is only hashed: the cleartext does not exist
            return self.rad.RLM_MODULE_REJECT, reply_message(CHAP_NEEDS_CLEARTEXT), None
        token = new_token()
        self.in_flight.put(token, grant)
        control = (("Cleartext-Password", ":=", pin), (MARKER, ":=", GRANTED + token))
        return self.rad.RLM_MODULE_UPDATED, accept_reply(grant, token), control

    def _refuse(self, refusal: Refusal, message: str) -> HookResult:
        return self.rad.RLM_MODULE_REJECT, reply_message(message), ((MARKER, ":=", REFUSED + refusal.value),)

    # -- post-auth: take the simultaneous-use slot, record the attempt ------------------------------
    def _post_auth(self, lists: dict[str, Any]) -> HookResult:
        control = Attributes.of(lists.get("config"))
        marker = control.first(MARKER) or ""
        rejected = (control.first("Post-Auth-Type") or "").lower() == "reject"
        if marker.startswith(GRANTED):
            grant = self.in_flight.pop(marker[len(GRANTED) :])
            if grant is None:  # never accept a login whose session slot was not taken
                self.log(self.rad.L_ERR, "post_auth: no grant for this request (held over 60 s?): rejected")
                return self.rad.RLM_MODULE_REJECT, reply_message(TRY_AGAIN), ((MARKER, ":=", RECORDED),)
            packet = decode_login(Attributes.of(lists.get("request")))
            if rejected:  # authorize accepted the card, so pap/chap refused the PIN
                self._record(packet, grant.hotspot_id, Refusal.WRONG_PIN)
                return self.rad.RLM_MODULE_UPDATED, reply_message(Refusal.WRONG_PIN.message), None
            return self._open_slot(packet, grant, marker[len(GRANTED) :])
        if marker.startswith(REFUSED) and rejected:
            self._record(decode_login(Attributes.of(lists.get("request"))), None, Refusal(marker[len(REFUSED) :]))
        return self.rad.RLM_MODULE_NOOP, None, None

    def _open_slot(self, packet: LoginPacket, grant: Grant, token: str) -> HookResult:
        """The decisive simultaneous-use check, under the card's row lock; REJECT turns the Accept into a Reject."""
        now = _now()
        try:
            with Session(self.autocommit) as session:
                reserve_radius_session(
                    session,
                    self.tariffs,
                    self.policy,
                    grant,
                    token=token,
                    calling_station_id=packet.calling_station_id,
                    now=now,
                    username=packet.card_text,
                    client=packet.client,
                )
        except CardRefused as refused:
            self._record(packet, grant.hotspot_id, refused.refusal)
            return self.rad.RLM_MODULE_REJECT, reply_message(str(refused)), ((MARKER, ":=", RECORDED),)
        return self.rad.RLM_MODULE_OK, None, None

    def _record(self, packet: LoginPacket, hotspot_id: int | None, outcome: Refusal) -> None:
        with Session(self.engine) as session, session.begin():
            self._attempt(session, packet, hotspot_id, outcome, _now())

    @staticmethod
    def _attempt(
        session: Session, packet: LoginPacket, hotspot_id: int | None, outcome: Refusal | None, now: datetime
    ) -> None:
        record_attempt(
            session,
            card_text=packet.card_text,
            client=packet.client,
            hotspot_id=hotspot_id,
            source="radius",
            outcome=outcome,
            now=now,
        )

    # -- accounting: OK only after the commit -------------------------------------------------------
    def _accounting(self, lists: dict[str, Any]) -> HookResult:
        received_at = _now()
        attributes = Attributes.of(lists.get("request"))
        try:
            update = decode_accounting(attributes)
        except MalformedPacket as exc:  # a retransmit would be just as wrong: acknowledge, bill nothing
            self.log(self.rad.L_ERR, f"accounting: packet acknowledged but not billed: {exc}")
            return self.rad.RLM_MODULE_OK, None, None
        now = event_time(attributes, received_at)
        try:
            with Session(self.autocommit) as session:  # the common case: one read, one guarded write
                done = record_accounting_without_lock(session, self.tariffs, self.nas, update, now)
            if done is None:  # Start, On/Off, a session not opened yet, a concurrent change
                with Session(self.engine) as session, session.begin():
                    record_accounting(session, self.tariffs, update, now)
        except AccountingRefused as exc:
            self.log(self.rad.L_WARN, f"accounting: packet acknowledged but not billed: {exc}")
        return self.rad.RLM_MODULE_OK, None, None


def _now() -> datetime:
    return datetime.now(UTC)


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return (str(orig or exc).strip().splitlines() or [type(exc).__name__])[0]
