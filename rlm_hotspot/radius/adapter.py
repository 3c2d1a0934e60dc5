"""The FreeRADIUS adapter: decode the pairs, call one billing service with `now`, encode the reply.

One RadiusAdapter lives in radiusd's embedded interpreter, made once by `instantiate`. Its methods are
the hook bodies; they never raise into radiusd. A refusal is a REJECT with its Reply-Message; an
infrastructure fault (database down, statement timeout) is FAIL plus a log line, and the next request
tries the database again (a broken connection is dropped from the pool), so service resumes by itself.
A pooled connection found dead when a hook uses it (the server restarted, or a failover moved the
primary, while it sat idle) costs no request: the hook runs once more on a new connection.

radiusd runs the hooks one at a time (one python3 instance), so the login rate is 1 / (time in the
hooks). A login's database round trip is therefore not made here: `authorize` runs twice, and between
the two calls the virtual server runs the database call through an rlm_sql instance, from radiusd's
thread pool (freeradius-config/sites-available/hotspot). Both calls are pure work.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any
from wsgiref.simple_server import WSGIServer

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from rlm_hotspot.clock import utc_now
from rlm_hotspot.core.decisions import SERVICE_UNAVAILABLE, Refusal
from rlm_hotspot.db import migrate
from rlm_hotspot.db.engine import make_engine
from rlm_hotspot.logs import first_line
from rlm_hotspot.metrics import serve
from rlm_hotspot.pins import PinKeyError, PinVault
from rlm_hotspot.radius.accounting import bill_packet
from rlm_hotspot.radius.decode import Attributes, MalformedPacket, decode_login
from rlm_hotspot.radius.encode import Item, accept_reply, reply_message
from rlm_hotspot.radius.metrics import RadiusMetrics
from rlm_hotspot.services.access import (
    LoginRequest,
    RadiusRefused,
    UnknownPlace,
    decide_radius_login,
    new_token,
    radius_login_call,
)
from rlm_hotspot.services.catalog import currency
from rlm_hotspot.services.errors import ServiceError
from rlm_hotspot.services.policy import login_policy
from rlm_hotspot.services.tariff_cache import NasCache, TariffCache
from rlm_hotspot.settings import Settings

HookResult = tuple[int, tuple[Item, ...] | None, tuple[Item, ...] | None]

# Control attributes between the hook calls and the virtual server (freeradius-config/dictionary.hotspot;
# a NAS cannot set control items): the database call's arguments and result, and what Post-Auth-Type
# REJECT records for a refused login, with the Reply-Message chap's refusal of the PIN gets.
LOGIN_CALL = "Hotspot-Login-Call"
LOGIN_RESULT = "Hotspot-Login-Result"
REFUSAL = "Hotspot-Refusal"
REFUSAL_MESSAGE = "Hotspot-Refusal-Message"
NOT_CONFIGURED = "This hotspot is not set up for card logins."
# What the log says of a login from a NAS the database lacks. Registering the address as it came would
# be wrong for a NAS that names its guest-side address: Disconnect and CoA are sent to the registered one.
UNKNOWN_NAS_ADVICE = (
    "register the NAS by the address it uses towards this server, with `hotspotctl nas add NAME --ip ADDRESS` "
    "(Disconnect and CoA requests are sent there); if the address above is the NAS's LAN side (CoovaChilli "
    "without `nasip`: its uamlisten address), set the NAS to name its RADIUS side instead (chilli.conf "
    "`nasip` and `radiuslisten`)"
)
# Reply-Messages are English, like the refusals' (the portal translates what it shows itself)


class StartupError(RuntimeError):
    """The module cannot serve: bad settings, unreadable key file, unreachable or uninitialised database."""


class RadiusAdapter:
    """The hook bodies, bound to the settings, engine and PIN keys made once at start-up."""

    def __init__(
        self,
        radiusd: ModuleType,
        settings: Settings,
        engine: Engine,
        vault: PinVault,
        metrics: RadiusMetrics | None = None,
    ) -> None:
        self.rad = radiusd
        self.engine = engine
        # Single-statement work (the guarded accounting write) runs on a connection of its own in
        # autocommit: no BEGIN/COMMIT round trips, and hooks run one at a time, so every round trip counts.
        self.autocommit = make_engine(
            settings, pool_size=1, application_name="rlm_hotspot", pre_ping=False, autocommit=True
        )
        self.vault = vault
        # the login decision's, kept between hooks (they run one at a time): it connects only to reload a
        # stale tariff, and making a Session for every login cost ~10 µs of the serialized hook
        self.login_db = Session(engine)
        self.tariffs = TariffCache()
        self.nas = NasCache()
        self.policy = login_policy(settings)
        self.metrics = metrics or RadiusMetrics()
        self.metrics_server: WSGIServer | None = None

    @classmethod
    def start(cls, radiusd: ModuleType, settings: Settings, buffer_file: Path | None = None) -> RadiusAdapter:
        """Open the PIN keys and check the database once; side-effect free (also runs under `radiusd -C`).

        `buffer_file`: the buffered accounting's detail file, whose backlog the metrics report."""
        vault = PinVault.from_file(settings.pin_key_file)
        engine = make_engine(settings, pool_size=1, application_name="rlm_hotspot", pre_ping=False)
        try:
            with Session(engine) as db:
                currency(db)
                todo = migrate.pending(db.connection())  # the virtual server calls functions of sql/
        except (ServiceError, migrate.MigrationError) as exc:
            engine.dispose()
            raise StartupError(str(exc)) from None
        except SQLAlchemyError as exc:
            engine.dispose()
            raise StartupError(f"cannot use the database: {first_line(exc)}") from None
        if todo:
            engine.dispose()
            raise StartupError(f"the database lacks {todo[0].path.name}: run `hotspotctl db upgrade`")
        return cls(radiusd, settings, engine, vault, RadiusMetrics(buffer_file))

    def serve_metrics(self, address: str, port: int) -> None:
        """Serve /metrics on a daemon thread (port 0: not at all). A port already taken is one error line:
        RADIUS goes on serving without metrics."""
        if port == 0:
            return
        try:
            self.metrics_server = serve(self.metrics.registry, port, address)
        except OSError as exc:
            self.log(self.rad.L_ERR, f"metrics not served: cannot listen on {address}:{port}: {exc.strerror or exc}")
            return
        self.log(self.rad.L_INFO, f"metrics on http://{address}:{port}/metrics")

    def close(self) -> None:
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
            self.metrics_server.server_close()
        self.login_db.close()
        self.engine.dispose()
        self.autocommit.dispose()

    # -- hooks -------------------------------------------------------------------------------------
    def authorize(self, lists: dict[str, Any]) -> HookResult:
        # FAIL is an Access-Reject: it tells the guest why
        return self._guarded("authorize", self._authorize, lists, fault_reply=reply_message(SERVICE_UNAVAILABLE))

    def accounting(self, lists: dict[str, Any]) -> HookResult:
        # FAIL sends no Accounting-Response: the NAS retransmits, nothing is lost
        return self._guarded("accounting", self._accounting, lists, fault_reply=None)

    def _guarded(
        self,
        hook: str,
        body: Callable[[dict[str, Any]], HookResult],
        lists: dict[str, Any],
        fault_reply: tuple[Item, ...] | None,
    ) -> HookResult:
        """Run a hook body, timed and counted; a database fault or a bug becomes FAIL (with `fault_reply`) and
        one log line, never an exception."""
        started = time.perf_counter()
        try:
            result = self._again_if_dropped(hook, body, lists)
        except (OperationalError, InterfaceError) as exc:  # down, unreachable, statement timeout
            why = f"database unavailable, answering FAIL: {first_line(exc)}"
            result = self._fault(hook, "database_unavailable", why, fault_reply)
        except SQLAlchemyError as exc:
            why = f"database error, answering FAIL: {first_line(exc)}"
            result = self._fault(hook, "database_error", why, fault_reply)
        except PinKeyError as exc:  # the key file is not the cards' own: no guest's PIN is wrong
            result = self._fault(hook, "pin_key", f"PIN key fault, answering FAIL: {exc}", fault_reply)
        except Exception:
            why = f"internal error, answering FAIL: {traceback.format_exc()}"
            result = self._fault(hook, "unexpected", why, fault_reply)
        self.metrics.hook_seconds.labels(hook).observe(time.perf_counter() - started)
        self.metrics.requests.labels(hook, self._outcome(result)).inc()
        return result

    def _again_if_dropped(
        self, hook: str, body: Callable[[dict[str, Any]], HookResult], lists: dict[str, Any]
    ) -> HookResult:
        """Run the body; once more if the connection it used turned out dead (SQLAlchemy then drops it and
        the pool's older ones, so the second run connects afresh, and libpq's target_session_attrs finds the
        primary).

        Without pre-ping (a round trip per hook) a connection that died idle is noticed only by the hook
        that uses it; the transactional engine serves only a tariff reload (every 30 s) and the locked
        accounting path, so after a failover its connection may wait there long after service is back,
        and a login that reloads its tariff would be refused for it. Running a hook again is safe: the
        login's call reads, and accounting is a retransmission to the module (guarded writes, idempotency
        keys). A failed connect is not retried (the database is away: FAIL at once), nor a second drop.
        """
        try:
            return body(lists)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            self.log(self.rad.L_INFO, f"{hook}: a pooled database connection was lost, trying a new one: "
                                      f"{first_line(exc)}")  # fmt: skip
        return body(lists)

    def _fault(self, hook: str, kind: str, why: str, fault_reply: tuple[Item, ...] | None) -> HookResult:
        """FAIL, logged (`why`) and counted (`kind` labels hotspot_radius_errors)."""
        self.log(self.rad.L_ERR, f"{hook}: {why}")
        self.metrics.errors.labels(hook, kind).inc()
        return self.rad.RLM_MODULE_FAIL, fault_reply, None

    def _outcome(self, result: HookResult) -> str:
        """How the metrics name a hook's answer: authorize's first call `checked` the request (the login's
        database call comes next), its second call `accept`s or `reject`s; accounting is `ok` or `fail`."""
        rcode, reply, _ = result
        if rcode == self.rad.RLM_MODULE_FAIL:
            return "fail"
        if rcode == self.rad.RLM_MODULE_REJECT:
            return "reject"
        if rcode == self.rad.RLM_MODULE_UPDATED:
            return "accept" if reply else "checked"
        return "ok"

    def log(self, level: int, message: str) -> None:
        self.rad.radlog(level, f"rlm_hotspot: {message}")

    # -- authorize, twice: before the database call (check, prepare) and after it (decide) ----------
    def _authorize(self, lists: dict[str, Any]) -> HookResult:
        try:
            packet = decode_login(Attributes.of(lists.get("request")))
        except MalformedPacket as exc:
            self.log(self.rad.L_ERR, f"authorize: malformed Access-Request rejected: {exc}")
            self.metrics.refusals.labels("malformed_request").inc()
            return self.rad.RLM_MODULE_REJECT, reply_message("Invalid login request."), None
        request = LoginRequest(
            card_text=packet.card_text,
            source="radius",
            nas_ip=packet.nas_ip,
            client=packet.client,
            pin=packet.password,  # PAP: checked here in both PIN modes
            chap=packet.chap,  # CHAP: checked here against the revealed PIN, before the card's state is told
        )
        result = Attributes.of(lists.get("config")).first(LOGIN_RESULT)
        if result == "":  # rlm_sql logged why (database down, statement timeout); the call is retried next time
            return self._fault(
                "authorize", "login_call_failed", "the login's database call failed, answering FAIL",
                reply_message(SERVICE_UNAVAILABLE),
            )  # fmt: skip
        try:
            if result is None:
                call = radius_login_call(
                    request,
                    self.policy,
                    token=new_token(),
                    username=packet.card_text,
                    calling_station_id=packet.calling_station_id,
                    now=utc_now(),
                )
                return self.rad.RLM_MODULE_UPDATED, None, ((LOGIN_CALL, ":=", call),)
            try:
                login = decide_radius_login(self.login_db, self.vault, self.tariffs, self.policy, request, result)
            finally:
                if self.login_db.in_transaction():  # a stale tariff was reloaded: give the connection back
                    self.login_db.close()
        except RadiusRefused as refused:
            self.metrics.refusals.labels(str(refused.refusal)).inc()
            return self.rad.RLM_MODULE_REJECT, reply_message(str(refused)), ((REFUSAL, ":=", refused.record),)
        except UnknownPlace as exc:
            self.log(self.rad.L_ERR, f"authorize: {exc}: {UNKNOWN_NAS_ADVICE}")
            self.metrics.refusals.labels("unknown_nas").inc()
            return self.rad.RLM_MODULE_REJECT, reply_message(NOT_CONFIGURED), None
        pin = packet.password if packet.password is not None else login.grant.pin
        assert pin is not None  # decide_radius_login refuses a CHAP login whose PIN it cannot reveal
        items: tuple[Item, ...] = (("Cleartext-Password", ":=", pin),)
        if login.refused_by_chap is not None:  # CHAP: chap checks the PIN again; Post-Auth-Type REJECT undoes the login
            items += ((REFUSAL, ":=", login.refused_by_chap), (REFUSAL_MESSAGE, ":=", Refusal.WRONG_PIN.message))
        return self.rad.RLM_MODULE_UPDATED, accept_reply(login.grant, login.token), items

    # -- accounting: OK only after the commit -------------------------------------------------------
    def _accounting(self, lists: dict[str, Any]) -> HookResult:
        with Session(self.autocommit) as quick:  # the common case: one read, one guarded write
            outcome = bill_packet(
                Attributes.of(lists.get("request")),
                utc_now(),
                quick=quick,
                careful=self._transaction,
                tariffs=self.tariffs,
                nas=self.nas,
            )
        if outcome.unbilled is not None:
            self.metrics.unbilled.labels(outcome.unbilled).inc()
        for held in outcome.result.held if outcome.result else ():
            self.metrics.held.labels(str(held.quantity), str(held.reason)).inc()
        for error, line in outcome.log_lines():
            self.log(self.rad.L_ERR if error else self.rad.L_WARN, line)
        return self.rad.RLM_MODULE_OK, None, None

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        """A transaction of its own, committed before the hook answers OK."""
        with Session(self.engine) as db, db.begin():
            yield db
