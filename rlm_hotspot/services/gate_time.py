"""A standalone session pays for the time its gate is open (docs/billing.md, "Time a gate was open").

The page's heartbeats bill online time as they come; when they stop, the gate stays open until the
worker (or the portal) cuts it, and that time is billed too: by the worker while the gate is open and
no heartbeat bills it (`rlm_hotspot.services.enforcement.bill_open_gates`), and at the cut. So no silence
is free, however often a card logs in and goes quiet.
"""

from __future__ import annotations

from datetime import datetime

from rlm_hotspot.db import sessions as sessions_db
from rlm_hotspot.db.engine import Executor
from rlm_hotspot.db.sessions import SessionView
from rlm_hotspot.services.sessions import rate_online_time
from rlm_hotspot.services.tariff_cache import TariffCache


def bill_open_time(db: Executor, tariffs: TariffCache, view: SessionView, now: datetime) -> int:
    """Bill the online time of the standalone session `view` (read under its row lock) up to `now`,
    without counting it as a sign of life; returns the balance after it."""
    write = rate_online_time(db, tariffs, view, now)
    balance = sessions_db.apply_meter(db, view, write, now)
    assert balance is not None, "the row is locked: nothing can have changed it"
    return balance
