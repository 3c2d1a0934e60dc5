"""Queries of `hotspotctl sessions`: the sessions an administrator looks at and ends."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from rlm_hotspot.db.rows import every, one

_LIST = """
    SELECT s.id, h.name AS hotspot, h.timezone, c.number AS card, s.username AS user_name, s.source, s.status,
           s.started_at, s.last_seen_at, s.stopped_at, s.terminate_cause, s.seconds, s.input_octets,
           s.output_octets, s.charged, host(s.framed_ip) AS ip, s.calling_station_id AS mac, n.name AS nas
    FROM sessions s
    JOIN hotspots h ON h.id = s.hotspot_id
    JOIN cards c ON c.id = s.card_id
    LEFT JOIN nas n ON n.id = s.nas_id
    WHERE (CAST(:hotspot_id AS integer) IS NULL OR s.hotspot_id = :hotspot_id)
      AND (NOT :online OR s.status = 'open')
    ORDER BY s.started_at DESC, s.id DESC
    LIMIT :limit"""


@dataclass(frozen=True, slots=True)
class ListedSession:
    id: int
    hotspot: str
    timezone: str
    card: str
    user_name: str | None
    source: str
    status: str
    started_at: datetime
    last_seen_at: datetime
    stopped_at: datetime | None
    terminate_cause: str | None
    seconds: int
    input_octets: int
    output_octets: int
    charged: int
    ip: str | None
    mac: str | None
    nas: str | None


@dataclass(frozen=True, slots=True)
class SessionToEnd:
    id: int
    status: str
    source: str
    stopped_at: datetime | None
    terminate_cause: str | None
    nas: str | None  # the NAS's name


def sessions(db: Session, *, hotspot_id: int | None, online: bool, limit: int) -> list[ListedSession]:
    """The latest sessions first, of one hotspot or all, only the open ones if `online`."""
    return every(ListedSession, db.execute(text(_LIST), {"hotspot_id": hotspot_id, "online": online, "limit": limit}))


def session_for_end(db: Session, session_id: int) -> SessionToEnd | None:
    """What `sessions end` tells about a session before queueing its end (locked: one end at a time)."""
    row = db.execute(
        text(
            """SELECT s.id, s.status, s.source, s.stopped_at, s.terminate_cause, n.name AS nas
               FROM sessions s LEFT JOIN nas n ON n.id = s.nas_id WHERE s.id = :id FOR UPDATE OF s"""
        ),
        {"id": session_id},
    ).first()
    return one(SessionToEnd, row)
