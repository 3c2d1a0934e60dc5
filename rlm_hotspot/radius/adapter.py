"""The FreeRADIUS adapter: decode the pairs, call one billing service with `now`, encode the reply.

One RadiusAdapter lives in radiusd's embedded interpreter, made once by `instantiate`. Its methods are
the hook bodies; they never raise into radiusd. A refusal is a REJECT with its Reply-Message; an
infrastructure fault (database down, statement timeout) is FAIL plus a log line, and the next request
tries the database again (a broken connection is dropped from the pool), so service resumes by itself.

radiusd runs the hooks one at a time (one python3 instance), so the login rate is 1 / (time in the
hooks): an accepted login is one hook call and one database round trip, on a Connection of its own
(not an ORM Session, whose bookkeeping costs more than the query).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
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
    MalformedPacket,
    decode_accounting,
    decode_login,
    event_time,
)
from rlm_hotspot.radius.encode import Item, accept_reply, reply_message
from rlm_hotspot.services.access import (
    LoginRequest,
    Policy,
    UnknownPlace,
    cancel_radius_login,
    login_radius,
    new_token,
)
from rlm_hotspot.services.catalog import currency
from rlm_hotspot.services.errors import CardRefused, ServiceError
from rlm_hotspot.services.sessions import AccountingRefused, record_accounting, record_accounting_without_lock
from rlm_hotspot.services.tariff_cache import NasCache, TariffCache
from rlm_hotspot.settings import Settings

HookResult = tuple[int, tuple[Item, ...] | None, tuple[Item, ...] | None]

# Control attribute that tells post_auth (Post-Auth-Type REJECT) which login authorize reserved, so a PIN
# that chap refuses gives the slot back (the NAS cannot set control items).
MARKER = "Tmp-String-0"
NOT_CONFIGURED = "This hotspot is not set up for card logins."


class StartupError(RuntimeError):
    """The module cannot serve: bad settings, unreadable key file, unreachable or uninitialised database."""


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

    # -- authorize: decide and take the slot in one round trip, hand pap/chap the PIN --------------
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
            pin=packet.password,  # PAP: checked here in both PIN modes; CHAP: None, chap checks the revealed PIN
        )
        token = new_token()
        try:
            with self.autocommit.connect() as connection:
                login = login_radius(
                    connection,
                    self.vault,
                    self.tariffs,
                    self.policy,
                    request,
                    token=token,
                    username=packet.card_text,
                    calling_station_id=packet.calling_station_id,
                    now=_now(),
                )
        except CardRefused as refused:
            return self.rad.RLM_MODULE_REJECT, reply_message(str(refused)), None
        except UnknownPlace as exc:
            self.log(self.rad.L_ERR, f"authorize: {exc}: add it with `hotspotctl nas add`")
            return self.rad.RLM_MODULE_REJECT, reply_message(NOT_CONFIGURED), None
        pin = packet.password if packet.password is not None else login.grant.pin
        assert pin is not None  # login_radius refuses a CHAP login whose PIN it cannot reveal
        control: tuple[Item, ...] = (("Cleartext-Password", ":=", pin),)
        if packet.chap:  # chap has the last word on the PIN: post-auth undoes the login if it says no
            reservation = login.reservation
            control += ((MARKER, ":=", f"{reservation.session_id}:{reservation.attempt_id}"),)
        return self.rad.RLM_MODULE_UPDATED, accept_reply(login.grant, token), control

    # -- post-auth (REJECT only): chap refused the PIN of a login authorize reserved ----------------
    def _post_auth(self, lists: dict[str, Any]) -> HookResult:
        control = Attributes.of(lists.get("config"))
        session_id, _, attempt_id = (control.first(MARKER) or "").partition(":")
        rejected = (control.first("Post-Auth-Type") or "").lower() == "reject"
        if not (rejected and session_id.isdigit() and attempt_id.isdigit()):
            return self.rad.RLM_MODULE_NOOP, None, None
        with self.autocommit.connect() as connection:
            cancel_radius_login(
                connection, session_id=int(session_id), attempt_id=int(attempt_id), refusal=Refusal.WRONG_PIN
            )
        return self.rad.RLM_MODULE_UPDATED, reply_message(Refusal.WRONG_PIN.message), None

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
