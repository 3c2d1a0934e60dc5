"""Sessions as an administrator sees them (`hotspotctl sessions list`) and ends them (`sessions end`).

Ending goes through the worker's queue like every other cut (rlm_hotspot.services.enforcement): the
worker sends the NAS a Disconnect-Request, or closes a standalone client's gate, and the session closes
with Acct-Terminate-Cause Admin-Reset. Nothing here talks to a NAS or a firewall.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from rlm_hotspot.core.money import Currency
from rlm_hotspot.db import admin_sessions as q
from rlm_hotspot.db.enforcement import queue_admin_end
from rlm_hotspot.services.catalog import get_hotspot
from rlm_hotspot.services.errors import NotFound, ServiceError


def list_sessions(
    db: Session, currency: Currency, *, hotspot: str | None, online: bool, limit: int
) -> list[dict[str, object]]:
    """The latest sessions first, their times in their hotspot's local time, money formatted."""
    if limit < 1:
        raise ServiceError("--limit must be at least 1")
    hotspot_id = get_hotspot(db, hotspot).id if hotspot else None
    rows = []
    for row in q.sessions(db, hotspot_id=hotspot_id, online=online, limit=limit):
        local = ZoneInfo(row.timezone)
        rows.append(
            {
                "id": row.id,
                "hotspot": row.hotspot,
                "card": row.card,
                "user": row.user_name,
                "source": row.source,
                "status": row.status,
                "started": _local(row.started_at, local),
                "last_seen": _local(row.last_seen_at, local),
                "stopped": _local(row.stopped_at, local),
                "cause": row.terminate_cause,
                "seconds": row.seconds,
                "bytes_in": row.input_octets,
                "bytes_out": row.output_octets,
                "charged": currency.format(row.charged),
                "ip": row.ip,
                "mac": row.mac,
                "nas": row.nas,
            }
        )
    return rows


def _local(moment: datetime | None, zone: ZoneInfo) -> datetime | None:
    return moment.astimezone(zone) if moment else None


@dataclass(frozen=True)
class EndQueued:
    session_id: int
    how: str  # what the worker will do, for the admin


def end_session(db: Session, session_id: int, now: datetime) -> EndQueued:
    """Queue the end of a live session (the worker is woken on commit)."""
    row = q.session_for_end(db, session_id)
    if row is None:
        raise NotFound(f"no session {session_id}")
    if row.stopped_at is not None:  # closed (a CHECK ties the two)
        raise ServiceError(
            f"session {session_id} has already ended ({row.terminate_cause or 'no cause'}, at "
            f"{row.stopped_at.isoformat(sep=' ', timespec='seconds')}): nothing to do"
        )
    if not queue_admin_end(db, session_id, now):
        raise ServiceError(f"session {session_id} ended meanwhile: nothing to do")
    if row.source == "portal":
        how = "its gate will be closed"
    elif row.nas:
        how = f"a Disconnect-Request will go to NAS {row.nas}"
    else:
        how = "no NAS is known for it: it ends by its Session-Timeout or as stale"
    return EndQueued(session_id, how)
