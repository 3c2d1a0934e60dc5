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

from portal.heartbeats import HeartbeatPoster, RecentViews, mark_sign_of_life_without_lock, post_rated_heartbeats
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
    Signal,
    mark_sign_of_life,
    portal_hotspot,
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
    recent: RecentViews = field(default_factory=RecentViews)  # sessions this process last read or posted
    _hotspot: tuple[datetime, PortalHotspot] | None = None
    _currency: Currency | None = None
    open_db: sessionmaker[Session] = field(init=False)
    poster: HeartbeatPoster | None = field(init=False)  # None: every heartbeat is posted at once

    def __post_init__(self) -> None:
        # The engine's connections stay in autocommit (the heartbeat is the hot path); a unit of work
        # switches its connection to transactions for the time it holds it.
        self.open_db = session_factory(self.engine.execution_options(isolation_level="READ COMMITTED"))
        delay_ms = self.settings.heartbeat_write_delay_ms
        self.poster = HeartbeatPoster(self.post_rated_heartbeats, delay_ms / 1000) if delay_ms else None

    def close(self) -> None:
        """Post what is rated in memory and let go of the database (tests; gunicorn exits instead)."""
        if self.poster is not None:
            self.poster.stop()
        self.engine.dispose()

    def post_rated_heartbeats(self) -> int:
        """Post the heartbeats this process rated in memory (see `portal.heartbeats`)."""
        if not self.recent.has_unposted():
            return 0
        with self.without_transaction() as db:
            return post_rated_heartbeats(db, self.tariffs, self.recent, self.clock())

    @property
    def policy(self) -> Policy:
        return login_policy(self.settings.core)

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        """One transaction per request: committed when the block ends, also after a refused login (so
        the wrong PIN counts); rolled back only on an unexpected error. The heartbeats this process
        rated in memory are posted first, so a login, top-up or logout sees every debit."""
        if self.poster is not None:
            self.poster.post_now()
        with self.open_db() as db, db.begin():
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

    def mark_sign_of_life(
        self,
        db: Connection,
        token: str,
        signal: Signal,
        gate_ip: str | None,
        *,
        may_post_later: bool = False,
        seen_since: datetime | None = None,
    ) -> PortalStatus:
        """Mark a sign of life on the guest's session (or learn that it ended: then its gate is closed,
        idempotently).

        `db` is a connection `without_transaction`: the common case is one guarded post (after a
        heartbeat this process posted) or one read and one guarded post; a session to close for its
        silence, or one that changed meanwhile, goes the locked way in a transaction of its own.
        `may_post_later` (the page's heartbeat: its JavaScript's, or its no-JS refresh): with a poster, a
        heartbeat on a session this process knows is rated in memory and posted by the poster soon
        after; a page the guest opens always posts (and so learns at once of a session ended elsewhere).
        A view this process kept from before `seen_since` (the guest's top-up) is read again.
        """
        hotspot = self.hotspot(db)
        now = self.clock()
        poster = self.poster if may_post_later else None
        view = mark_sign_of_life_without_lock(
            db,
            self.tariffs,
            hotspot,
            token,
            now,
            signal,
            self.recent,
            post_later=poster is not None,
            seen_since=seen_since,
        )
        if poster is not None:
            poster.ensure_running()
        if view is None:
            with self.unit_of_work() as locked:
                view = mark_sign_of_life(locked, self.tariffs, hotspot, token, now, signal)
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
