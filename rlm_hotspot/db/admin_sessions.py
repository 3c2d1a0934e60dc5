"""Queries of `hotspotctl sessions`: the sessions an administrator looks at and ends."""

from __future__ import annotations

from sqlalchemy import Row, text
from sqlalchemy.orm import Session

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


def sessions(session: Session, *, hotspot_id: int | None, online: bool, limit: int) -> list[Row]:  # type: ignore[type-arg]
    """The latest sessions first, of one hotspot or all, only the open ones if `online`."""
    return list(session.execute(text(_LIST), {"hotspot_id": hotspot_id, "online": online, "limit": limit}))


def session_for_end(session: Session, session_id: int) -> Row | None:  # type: ignore[type-arg]
    """What `sessions end` tells about a session before queueing its end (locked: one end at a time)."""
    return session.execute(
        text(
            """SELECT s.id, s.status, s.source, s.stopped_at, s.terminate_cause, n.name AS nas
               FROM sessions s LEFT JOIN nas n ON n.id = s.nas_id WHERE s.id = :id FOR UPDATE OF s"""
        ),
        {"id": session_id},
    ).first()
