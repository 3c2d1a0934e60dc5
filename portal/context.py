"""What every request of one portal process shares: engine, PIN keys, caches, the gate, the clock."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from portal.heartbeat_writer import HeartbeatWriter
from portal.settings import PortalSettings
from rlm_hotspot.clock import utc_now
from rlm_hotspot.core.money import Currency
from rlm_hotspot.db.engine import session_factory
from rlm_hotspot.nas.gates import Gate, GateError
from rlm_hotspot.pins import PinVault
from rlm_hotspot.services.access import Policy
from rlm_hotspot.services.catalog import currency
from rlm_hotspot.services.policy import login_policy
from rlm_hotspot.services.portal import (
    SILENCE_CAUSES,
    PortalHotspot,
    PortalStatus,
    RecentViews,
    Signal,
    keep_alive,
    keep_alive_without_lock,
    portal_hotspot,
    write_deferred_heartbeats,
)
from rlm_hotspot.services.tariff_cache import TariffCache

HOTSPOT_TTL = timedelta(seconds=30)
log = logging.getLogger(__name__)


@dataclass
class PortalContext:
    """One per process (gunicorn worker); the hotspot row is re-read every 30 s so admin changes arrive."""

    settings: PortalSettings
    engine: Engine  # in autocommit mode (`make_engine(autocommit=True)`)
    vault: PinVault
    gate: Gate
    clock: Callable[[], datetime] = utc_now
    tariffs: TariffCache = field(default_factory=TariffCache)
    recent: RecentViews = field(default_factory=RecentViews)  # sessions this process last billed
    _hotspot: tuple[datetime, PortalHotspot] | None = None
    _currency: Currency | None = None
    units_of_work: sessionmaker[Session] = field(init=False)
    writer: HeartbeatWriter | None = field(init=False)  # None: every heartbeat is written at once

    def __post_init__(self) -> None:
        # The engine's connections stay in autocommit (the heartbeat is the hot path); a unit of work
        # switches its connection to transactions for the time it holds it.
        self.units_of_work = session_factory(self.engine.execution_options(isolation_level="READ COMMITTED"))
        delay_ms = self.settings.heartbeat_write_delay_ms
        self.writer = HeartbeatWriter(self.write_deferred_heartbeats, delay_ms / 1000) if delay_ms else None

    def close(self) -> None:
        """Write what is held in memory and let go of the database (tests; gunicorn exits instead)."""
        if self.writer is not None:
            self.writer.stop()
        self.engine.dispose()

    def write_deferred_heartbeats(self) -> int:
        """Write the heartbeats this process billed in memory (see `portal.heartbeat_writer`)."""
        if not self.recent.has_held():
            return 0
        with self.without_transaction() as db:
            return write_deferred_heartbeats(db, self.tariffs, self.recent, self.clock())

    @property
    def policy(self) -> Policy:
        return login_policy(self.settings.core)

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        """One transaction per request: committed when the block ends, also after a refused login (so
        the wrong PIN counts); rolled back only on an unexpected error. The heartbeats this process
        billed in memory are written first, so a login, top-up or logout sees every debit."""
        if self.writer is not None:
            self.writer.write_now()
        with self.units_of_work() as db, db.begin():
            yield db

    @contextmanager
    def without_transaction(self) -> Iterator[Connection]:
        """Autocommit: every statement commits by itself, with no BEGIN/COMMIT round trips. For requests
        whose reads stand alone and whose one write is a single guarded statement (the heartbeat). A plain
        Connection, not an ORM Session: the heartbeat is the portal's hot path, and a Session's
        bookkeeping costs more than its two statements."""
        with self.engine.connect() as connection:
            yield connection

    def hotspot(self, db: Session | Connection | None = None) -> PortalHotspot:
        """The portal's hotspot, re-read every 30 s (on `db`, or on a connection of its own)."""
        now = self.clock()
        if self._hotspot is None or now - self._hotspot[0] > HOTSPOT_TTL:
            if db is None:
                with self.without_transaction() as connection:
                    return self.hotspot(connection)
            self._hotspot = (now, portal_hotspot(db, self.settings.hotspot))
        return self._hotspot[1]

    def currency(self, db: Session | Connection) -> Currency:
        if self._currency is None:
            self._currency = currency(db)
        return self._currency

    def sign_of_life(
        self,
        db: Connection,
        token: str,
        signal: Signal,
        gate_ip: str | None,
        *,
        may_defer: bool = False,
        seen_since: datetime | None = None,
    ) -> PortalStatus:
        """Keep the guest's session alive (or learn that it ended: then its gate is closed, idempotently).

        `db` is a connection `without_transaction`: the common case is one guarded write (after a
        heartbeat this process billed) or one read and one guarded write; a session to close for its
        silence, or one that changed meanwhile, goes the locked way in a transaction of its own.
        `may_defer` (the page's heartbeat: its JavaScript's, or its no-JS refresh): with a writer, a
        heartbeat on a session this process knows is billed in memory and written by the writer soon
        after; a page the guest opens always writes (and so learns at once of a session ended elsewhere).
        A view this process kept from before `seen_since` (the guest's top-up) is read again.
        """
        hotspot = self.hotspot(db)
        now = self.clock()
        writer = self.writer if may_defer else None
        view = keep_alive_without_lock(
            db, self.tariffs, hotspot, token, now, signal, self.recent, defer=writer is not None, seen_since=seen_since
        )
        if writer is not None:
            writer.ensure_running()
        if view is None:
            with self.unit_of_work() as locked:
                view = keep_alive(locked, self.tariffs, hotspot, token, now, signal)
        if view.status.terminate_cause in SILENCE_CAUSES and hotspot.mode == "standalone":
            self.close_gate(gate_ip)
        return view

    def close_gate(self, ip: str | None) -> None:
        """Cut a client off after its session ended; a failure is logged (the worker closes gates too)."""
        if ip is None:
            return
        try:
            self.gate.close(ip, None)
        except GateError as exc:
            log.error("could not close the gate for %s: %s", ip, exc)

    def public_url(self, hotspot: PortalHotspot) -> str:
        """How guests reach this portal: the hotspot's portal URL, else the installation's."""
        return hotspot.portal_url or self.settings.public_url

    def heartbeat_interval(self, hotspot: PortalHotspot) -> int:
        return self.settings.heartbeat_interval(hotspot.heartbeat_timeout)


def portal() -> PortalContext:
    context: PortalContext = current_app.extensions["hotspot_portal"]  # Flask keeps extensions untyped
    return context
