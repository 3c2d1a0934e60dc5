"""The audit trail: every console action, with who, what, when and from where (never a PIN or password)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from rlm_hotspot.db import audit as q
from rlm_hotspot.db.audit import LastExport

# A batch's PINs leave through the console's export, `hotspotctl cards export` (its action is the command's
# path) or `hotspotctl cards generate --output/--show` (its second row); each names the batch as detail's
# `batch_id`.
BATCH_EXPORTS = ("batch.export", "cli.cards.export", "cli.cards.generate.export")


@dataclass(frozen=True)
class Actor:
    """Who acts, and from where: a signed-in staff member (id) or a name typed at sign-in (id None)."""

    staff_id: int | None
    name: str
    client: str


def record(db: Session, actor: Actor, action: str, now: datetime, subject: str | None = None, **detail: object) -> int:
    """Append one row in the caller's transaction: it commits (or rolls back) with the action itself."""
    return q.insert(
        db,
        at=now,
        staff_id=actor.staff_id,
        staff_name=actor.name,
        action=action,
        subject=subject,
        detail=detail,
        client=actor.client,
    )


def changed_anything(db: Session) -> bool:
    """Whether the caller's transaction wrote anything yet (an admin command worth a line in the trail)."""
    return q.transaction_wrote(db)


def trail(
    db: Session,
    *,
    since: datetime | None = None,
    staff_name: str | None = None,
    action: str | None = None,
    limit: int = 200,
) -> list[dict[str, object]]:
    """Newest first; `action` matches itself and its sub-actions ('card' matches 'card.sell')."""
    return q.rows(db, since=since, staff_name=staff_name, action=action, limit=limit)


def last_batch_exports(db: Session, batch_id: int | None = None) -> dict[int, LastExport]:
    """When and by whom each batch's PINs were last exported, through either door (batch id: export)."""
    return {mark.batch_id: mark for mark in q.last_exports(db, BATCH_EXPORTS, batch_id)}
