"""Ledger writes: one statement inserts the row and moves the cached balance, or does nothing at all."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

# How a statement that posts many ledger rows also moves the balances, in one place: its CTE `entry` is an
# `INSERT INTO ledger ... SELECT ...`; this text ends it and adds the CTE `moved_balance` (id, balance) of
# every account it moved (see below: a replayed key inserts nothing, so it moves nothing).
POSTED_ENTRIES_MOVE_BALANCES = """
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING account_id, amount
    ), moved_balance AS (
        UPDATE accounts a SET balance = a.balance + posted.total, updated_at = :now
        FROM (SELECT account_id, sum(amount) AS total FROM entry GROUP BY account_id) posted
        WHERE a.id = posted.account_id
        RETURNING a.id, a.balance
    )"""

# The INSERT … ON CONFLICT DO NOTHING decides: a replayed key inserts nothing, so the UPDATE that joins on
# the inserted row moves no balance. A concurrent writer of the same key waits on the unique index and
# then inserts nothing, so a key can never move money twice.
_POST = text(
    """
    WITH entry AS (
        INSERT INTO ledger (account_id, amount, cause, idempotency_key, card_id, session_id,
                            seconds, bytes, note, created_at)
        VALUES (:account_id, :amount, :cause, :key, :card_id, :session_id, :seconds, :bytes, :note, :now)
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING account_id, amount
    )
    UPDATE accounts a SET balance = a.balance + entry.amount, updated_at = :now
    FROM entry WHERE a.id = entry.account_id
    RETURNING a.balance
    """
)


def post_entry(
    db: Session,
    *,
    account_id: int,
    amount: int,
    cause: str,
    key: str,
    now: datetime,
    card_id: int | None = None,
    session_id: int | None = None,
    seconds: int | None = None,
    bytes_: int | None = None,
    note: str | None = None,
) -> int | None:
    """Append one ledger row and update the balance; returns the new balance, or None for a replay."""
    row = db.execute(
        _POST,
        {
            "account_id": account_id,
            "amount": amount,
            "cause": cause,
            "key": key,
            "now": now,
            "card_id": card_id,
            "session_id": session_id,
            "seconds": seconds,
            "bytes": bytes_,
            "note": note,
        },
    ).first()
    return None if row is None else int(row.balance)


def create_account(db: Session, now: datetime) -> int:
    """A new, empty account; money only ever arrives through `post_entry`."""
    return int(
        db.execute(
            text("INSERT INTO accounts (balance, created_at, updated_at) VALUES (0, :now, :now) RETURNING id"),
            {"now": now},
        ).scalar_one()
    )


def accounts_out_of_balance(db: Session) -> list[tuple[int, int, int]]:
    """(account, cached balance, ledger sum) for every account where they differ: must be empty."""
    rows = db.execute(
        text(
            """
            SELECT a.id, a.balance, coalesce(l.total, 0) AS total
            FROM accounts a
            LEFT JOIN (SELECT account_id, sum(amount) AS total FROM ledger GROUP BY account_id) l
                   ON l.account_id = a.id
            WHERE a.balance <> coalesce(l.total, 0)
            """
        )
    )
    return [(r.id, r.balance, int(r.total)) for r in rows]
