"""The admin's review of held usage: what no link could have carried is billed only if someone says so.

Held rows come from RADIUS accounting (services.sessions) and the NetFlow import (services.flows). Each
decision is final and recorded with who made it, when and why; releasing bills the held amount to its
session through the same rating as any update, so the ledger tells it like every other debit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from rlm_hotspot.db import quarantine as q
from rlm_hotspot.services import flows, sessions
from rlm_hotspot.services.errors import NotFound, ServiceError
from rlm_hotspot.services.tariff_cache import TariffCache

STATES = ("held", "released", "dismissed")
SOURCES = ("radius", "netflow")


def held_counts(db: Session) -> list[tuple[str, str, int]]:
    """(source, reason, rows) of what is held now, for the metrics."""
    return q.held_counts(db)


def list_usage(
    db: Session, *, state: str | None = "held", source: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Quarantined usage, newest first (`state` None: every state)."""
    return q.listing(db, state=state, source=source, limit=limit)


def release(db: Session, quarantine_id: int, *, by: str, reason: str, now: datetime) -> int:
    """Bill held usage to its session after all; the minor units debited."""
    held = _held(db, quarantine_id)
    if held.source == "netflow":
        debited = flows.release_held_traffic(db, quarantine_id, now)
    else:
        debited = sessions.release_held(db, TariffCache(), held, now)
    q.resolve(db, quarantine_id, state="released", by=by, note=reason, at=now)
    return debited


def dismiss(db: Session, quarantine_id: int, *, by: str, reason: str, now: datetime) -> None:
    """Decide that held usage is not billed, ever."""
    _held(db, quarantine_id)
    q.resolve(db, quarantine_id, state="dismissed", by=by, note=reason, at=now)


def _held(db: Session, quarantine_id: int) -> q.HeldUsage:
    row = q.held_usage(db, quarantine_id, lock=True)
    if row is None:
        raise NotFound(f"no quarantined usage {quarantine_id}")
    if row.state != "held":
        raise ServiceError(f"quarantine {quarantine_id} was {row.state} already ({row.resolved_by}, {row.resolved_at})")
    return row
