"""What a guest's status page last said about itself (sql/016): hidden, closed, or nothing (visible).

Written only when the page says so (Page Lifecycle signals, a few per page), never by the heartbeat hot
path; read by the heartbeat rule when a session looks silent (rlm_hotspot.core.heartbeat).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text

from rlm_hotspot.db.engine import Executor


def mark_page_state(db: Executor, token: str, state: str | None, at: datetime) -> bool:
    """Record what the page said at `at` (None: visible again); False when the session has closed."""
    row = db.execute(
        text(
            """UPDATE sessions SET page_state = :state, page_state_at = :at
               WHERE auth_token = :token AND status <> 'closed' RETURNING id"""
        ),
        {"token": token, "state": state, "at": at},
    ).first()
    return row is not None


def page_state(db: Executor, session_id: int) -> tuple[str | None, datetime | None]:
    """The page's last word and when it said it ((None, None): nothing, or visible)."""
    row = db.execute(text("SELECT page_state, page_state_at FROM sessions WHERE id = :id"), {"id": session_id}).first()
    return (None, None) if row is None else (row.page_state, row.page_state_at)
