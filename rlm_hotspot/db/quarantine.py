"""The quarantine (sql/012): usage beyond what is physically possible, held for an admin's decision."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from rlm_hotspot.db.rows import one


def hold(
    db: Session,
    *,
    source: str,
    reason: str,
    quantity: str,
    held: int,
    reported: int | None,
    identity: str,
    key: str,
    received_at: datetime,
    session_id: int | None = None,
    hotspot_id: int | None = None,
    nas_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> int | None:
    """Hold usage; the id of the new row, or None when `key` was held before (a retransmit)."""
    return db.execute(
        text(
            """INSERT INTO quarantine (source, reason, quantity, held, reported, session_id, hotspot_id, nas_id,
                                       identity, detail, received_at, idempotency_key)
               VALUES (:source, :reason, :quantity, :held, :reported, :session_id, :hotspot_id, :nas_id,
                       :identity, CAST(:detail AS jsonb), :received_at, :key)
               ON CONFLICT (idempotency_key) DO NOTHING RETURNING id"""
        ),
        {
            "source": source,
            "reason": reason,
            "quantity": quantity,
            "held": held,
            "reported": reported,
            "session_id": session_id,
            "hotspot_id": hotspot_id,
            "nas_id": nas_id,
            "identity": identity,
            "detail": json.dumps(detail or {}, default=str),
            "received_at": received_at,
            "key": key,
        },
    ).scalar_one_or_none()


@dataclass(frozen=True, slots=True)
class HeldUsage:
    """A quarantine row: usage held back from billing until an admin decides."""

    id: int
    source: str  # radius | netflow
    reason: str
    quantity: str  # seconds | upload | download
    held: Decimal
    reported: Decimal | None
    session_id: int | None
    hotspot_id: int | None
    nas_id: int | None
    identity: str
    detail: dict[str, Any]
    received_at: datetime
    state: str  # held | released | dismissed
    resolved_at: datetime | None
    resolved_by: str | None
    resolution_note: str | None
    idempotency_key: str


_HELD_USAGE_COLUMNS = ", ".join(field.name for field in fields(HeldUsage))


def held_usage(db: Session, quarantine_id: int, *, lock: bool = False) -> HeldUsage | None:
    row = db.execute(
        text(f"SELECT {_HELD_USAGE_COLUMNS} FROM quarantine WHERE id = :id{' FOR UPDATE' if lock else ''}"),
        {"id": quarantine_id},
    ).first()
    return one(HeldUsage, row)


def listing(db: Session, *, state: str | None, source: str | None, limit: int) -> list[dict[str, Any]]:
    """The admin view's rows, newest first."""
    rows = db.execute(
        text(
            """SELECT id, source, reason, quantity, held, reported, hotspot, nas, card_number, session_id,
                      identity, received_at, state, resolved_at, resolved_by, resolution_note
               FROM admin_quarantine
               WHERE (CAST(:state AS text) IS NULL OR state = :state)
                 AND (CAST(:source AS text) IS NULL OR source = :source)
               ORDER BY received_at DESC, id DESC LIMIT :limit"""
        ),
        {"state": state, "source": source, "limit": limit},
    )
    return [dict(row._mapping) for row in rows]


def resolve(db: Session, quarantine_id: int, *, state: str, by: str, note: str | None, at: datetime) -> None:
    db.execute(
        text(
            """UPDATE quarantine SET state = :state, resolved_at = :at, resolved_by = :by, resolution_note = :note
               WHERE id = :id AND state = 'held'"""
        ),
        {"id": quarantine_id, "state": state, "at": at, "by": by, "note": note},
    )


def held_counts(db: Session) -> list[tuple[str, str, int]]:
    """(source, reason, rows) of what is held now: for metrics and status lines."""
    rows = db.execute(
        text("SELECT source, reason, count(*) AS n FROM quarantine WHERE state = 'held' GROUP BY 1, 2 ORDER BY 1, 2")
    )
    return [(r.source, r.reason, int(r.n)) for r in rows]
