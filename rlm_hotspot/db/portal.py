"""Queries of the captive portal: its hotspot, and finding a guest's live session without a cookie."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.orm import Session

from rlm_hotspot.db.engine import Executor

_HOTSPOT_COLUMNS = "id, name, timezone, mode, heartbeat, heartbeat_timeout, hidden_grace, portal_url, terms_of_use"


def hotspot_by_name(db: Executor, name: str) -> Row[Any] | None:
    """A Row still: services/portal.py (moving in another branch) builds its PortalHotspot from it."""
    return db.execute(text(f"SELECT {_HOTSPOT_COLUMNS} FROM hotspots WHERE name = :name"), {"name": name}).first()


def set_terms_of_use(db: Session, hotspot_id: int, terms: str | None) -> None:
    db.execute(text("UPDATE hotspots SET terms_of_use = :terms WHERE id = :id"), {"terms": terms, "id": hotspot_id})


def live_token_for_client(db: Executor, hotspot_id: int, ip: str) -> str | None:
    """The newest not-closed session of this hotspot whose client has address `ip` (RFC 8908 polls carry
    no cookie: the operating system asks, not the browser)."""
    return db.execute(
        text(
            """SELECT auth_token FROM sessions
               WHERE framed_ip = CAST(:ip AS inet) AND hotspot_id = :hotspot_id AND status <> 'closed'
               ORDER BY started_at DESC LIMIT 1"""
        ),
        {"ip": ip, "hotspot_id": hotspot_id},
    ).scalar_one_or_none()


def live_status_for_card(db: Executor, hotspot_id: int, card_number: str) -> str | None:
    """The status of the card's newest not-closed session at this hotspot ('pending': an Access-Accept
    whose Accounting-Start has not come; 'open'), None when it has none."""
    return db.execute(
        text(
            """SELECT s.status FROM sessions s JOIN cards c ON c.id = s.card_id
               WHERE c.number = :number AND s.hotspot_id = :hotspot_id AND s.status <> 'closed'
               ORDER BY s.started_at DESC LIMIT 1"""
        ),
        {"number": card_number, "hotspot_id": hotspot_id},
    ).scalar_one_or_none()


def live_token_for_card(db: Executor, hotspot_id: int, card_number: str) -> str | None:
    """The newest not-closed session of a card at this hotspot (RADIUS mode: the NAS opened it)."""
    return db.execute(
        text(
            """SELECT s.auth_token FROM sessions s JOIN cards c ON c.id = s.card_id
               WHERE c.number = :number AND s.hotspot_id = :hotspot_id AND s.status <> 'closed'
               ORDER BY s.started_at DESC LIMIT 1"""
        ),
        {"number": card_number, "hotspot_id": hotspot_id},
    ).scalar_one_or_none()
