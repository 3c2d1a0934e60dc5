"""Lockout queries: who is locked out now and lifting it early.

A card number is locked by wrong PINs, a client by wrong PINs and unknown card numbers (sql/014), within
the window. (A card's holder is not locked out by its card's count: login_snapshot decides that per login.)"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

_LOCKED = """
    SELECT la.{column} AS subject, count(*) AS failures, max(la.at) AS last_attempt,
           min(la.at) + make_interval(secs => :window) AS first_expiry
    FROM login_attempts la
    LEFT JOIN lockout_clears lc ON lc.kind = '{kind}' AND lc.subject = la.{column}
    WHERE la.outcome IN ({outcomes}) AND la.{column} IS NOT NULL
      AND la.at > GREATEST(:now - make_interval(secs => :window), lc.cleared_at)
    GROUP BY la.{column} HAVING count(*) >= :attempts
"""


def locked_out(db: Session, now: datetime, window_s: int, attempts: int) -> list[dict[str, object]]:
    """Card numbers and clients locked out at `now`, with how many failures and since when."""
    cards = _LOCKED.format(column="card_number", kind="card", outcomes="'wrong_pin'")
    clients = _LOCKED.format(column="client", kind="client", outcomes="'wrong_pin', 'unknown_card'")
    sql = f"""
        SELECT 'card' AS kind, * FROM ({cards}) cards
        UNION ALL
        SELECT 'client' AS kind, * FROM ({clients}) clients
        ORDER BY last_attempt DESC
    """
    params = {"now": now, "window": window_s, "attempts": attempts}
    return [dict(r._mapping) for r in db.execute(text(sql), params)]


def clear(db: Session, *, kind: str, subject: str, now: datetime) -> None:
    """Wrong PINs of this card number or client before `now` stop counting (they stay on record)."""
    db.execute(
        text(
            "INSERT INTO lockout_clears (kind, subject, cleared_at) VALUES (:kind, :subject, :now) "
            "ON CONFLICT (kind, subject) DO UPDATE SET cleared_at = excluded.cleared_at"
        ),
        {"kind": kind, "subject": subject, "now": now},
    )


def card_failures(db: Session, number: str, now: datetime, window_s: int) -> int:
    """Wrong PINs typed for this card number within the window and since its lockout was last lifted."""
    return int(
        db.execute(
            text(
                """SELECT count(*) FROM login_attempts la
                   WHERE la.card_number = :number AND la.outcome = 'wrong_pin'
                     AND la.at > GREATEST(:now - make_interval(secs => :window),
                                          (SELECT lc.cleared_at FROM lockout_clears lc
                                            WHERE lc.kind = 'card' AND lc.subject = :number))"""
            ),
            {"number": number, "now": now, "window": window_s},
        ).scalar_one()
    )
