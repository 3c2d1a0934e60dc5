"""Queries about card batches and cards."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, insert, select, text, update
from sqlalchemy.orm import Session

from rlm_hotspot.db import tables as t
from rlm_hotspot.db.engine import driver_cursor, rows_changed
from rlm_hotspot.db.rows import one

COPY_CHUNK = 50_000


def series_in_use(db: Session, series: int) -> bool:
    return db.execute(select(t.card_batches.c.id).where(t.card_batches.c.series == series)).first() is not None


def next_free_series(db: Session) -> int | None:
    """The smallest series (1..9999) no batch uses yet."""
    row = db.execute(
        text(
            "SELECT s FROM generate_series(1, 9999) s "
            "WHERE NOT EXISTS (SELECT 1 FROM card_batches WHERE series = s) ORDER BY s LIMIT 1"
        )
    ).first()
    return None if row is None else int(row.s)


def insert_batch(db: Session, **values: object) -> int:
    return int(db.execute(insert(t.card_batches).values(**values).returning(t.card_batches.c.id)).scalar_one())


def copy_cards(
    db: Session,
    batch_id: int,
    key_id: int,
    numbers: Sequence[str],
    secrets: Iterable[bytes],
    progress: Callable[[int], None] | None = None,
) -> None:
    """Bulk-insert new cards with COPY, in chunks (progress reported per chunk)."""
    cursor = driver_cursor(db.connection())
    secret_iter = iter(secrets)
    for start in range(0, len(numbers), COPY_CHUNK):
        chunk = numbers[start : start + COPY_CHUNK]
        buffer = io.StringIO()
        for number in chunk:
            buffer.write(f"{batch_id}\t{number}\t\\\\x{next(secret_iter).hex()}\t{key_id}\n")
        buffer.seek(0)
        cursor.copy_expert("COPY cards (batch_id, number, pin_secret, pin_key_id) FROM STDIN", buffer)
        if progress:
            progress(len(chunk))


@dataclass(frozen=True)
class CardRecord:
    """A card with what its batch says about it."""

    id: int
    number: str
    batch_id: int
    series: int
    status: str
    blocked: bool
    account_id: int | None
    activated_at: datetime | None
    redeemed_at: datetime | None
    pin_secret: bytes
    pin_key_id: int
    face_value: int
    tariff_id: int | None
    hotspot_id: int | None
    valid_from: datetime | None
    use_before: datetime | None
    validity_seconds: int | None
    expires_at: datetime | None
    balance: int | None


_CARD_COLUMNS = (
    t.cards.c.id,
    t.cards.c.number,
    t.cards.c.batch_id,
    t.card_batches.c.series,
    t.cards.c.status,
    t.cards.c.blocked,
    t.cards.c.account_id,
    t.cards.c.activated_at,
    t.cards.c.redeemed_at,
    t.cards.c.pin_secret,
    t.cards.c.pin_key_id,
    t.card_batches.c.face_value,
    t.card_batches.c.tariff_id,
    t.card_batches.c.hotspot_id,
    t.card_batches.c.valid_from,
    t.card_batches.c.use_before,
    t.card_batches.c.validity_seconds,
    t.card_batches.c.expires_at,
    t.accounts.c.balance,
)


def _card_query() -> Select[Any]:
    return select(*_CARD_COLUMNS).select_from(
        t.cards.join(t.card_batches, t.card_batches.c.id == t.cards.c.batch_id).outerjoin(
            t.accounts, t.accounts.c.id == t.cards.c.account_id
        )
    )


def card_by_number(db: Session, number: str, *, lock: bool = False) -> CardRecord | None:
    query = _card_query().where(t.cards.c.number == number)
    if lock:
        query = query.with_for_update(of=t.cards)
    return one(CardRecord, db.execute(query).first())


def lock_cards(db: Session, numbers: Sequence[str]) -> dict[str, CardRecord]:
    """Lock several cards in a fixed order (no deadlock between two top-ups of the same pair)."""
    rows = db.execute(
        _card_query().where(t.cards.c.number.in_(numbers)).order_by(t.cards.c.id).with_for_update(of=t.cards)
    )
    return {row.number: CardRecord(**row._mapping) for row in rows}


def cards_of_batch(db: Session, batch_id: int) -> list[CardRecord]:
    rows = db.execute(_card_query().where(t.cards.c.batch_id == batch_id).order_by(t.cards.c.number))
    return [CardRecord(**row._mapping) for row in rows]


def set_active(db: Session, card_id: int, account_id: int, now: datetime) -> None:
    db.execute(
        update(t.cards).where(t.cards.c.id == card_id).values(status="active", account_id=account_id, activated_at=now)
    )


def set_redeemed(db: Session, card_id: int, into_account_id: int, now: datetime) -> None:
    db.execute(
        update(t.cards)
        .where(t.cards.c.id == card_id)
        .values(status="redeemed", account_id=into_account_id, redeemed_at=now)
    )


def set_blocked(db: Session, *, blocked: bool, number: str | None = None, batch_id: int | None = None) -> int:
    """Block or unblock one card or a whole batch; returns how many cards changed."""
    stmt = update(t.cards).where(t.cards.c.blocked.is_not(blocked)).values(blocked=blocked)
    if number is not None:
        stmt = stmt.where(t.cards.c.number == number)
    if batch_id is not None:
        stmt = stmt.where(t.cards.c.batch_id == batch_id)
    return rows_changed(db.execute(stmt))


@dataclass(frozen=True, slots=True)
class Batch:
    """A batch of cards (table card_batches)."""

    id: int
    series: int
    name: str | None
    card_count: int
    face_value: int
    tariff_id: int | None
    hotspot_id: int | None
    valid_from: datetime | None
    use_before: datetime | None
    validity_seconds: int | None
    expires_at: datetime | None
    pin_mode: str
    pin_alphabet: str
    pin_length: int
    created_at: datetime


def batch_by_id(db: Session, batch_id: int) -> Batch | None:
    return one(Batch, db.execute(select(t.card_batches).where(t.card_batches.c.id == batch_id)).first())


def batch_of(db: Session, card: CardRecord) -> Batch:
    """The card's batch (there is one: the card refers to it)."""
    return Batch(**db.execute(select(t.card_batches).where(t.card_batches.c.id == card.batch_id)).one()._mapping)


def batch_exists(db: Session, batch_id: int) -> bool:
    return db.execute(select(t.card_batches.c.id).where(t.card_batches.c.id == batch_id)).first() is not None


def admin_cards(
    db: Session, *, batch_id: int | None = None, state: str | None = None, limit: int = 100
) -> list[dict[str, object]]:
    """Rows of the admin_cards view (state and balance derived there)."""
    clauses: list[str] = []
    params: dict[str, object] = {"limit": limit}
    if batch_id is not None:
        clauses.append("batch_id = :batch_id")
        params["batch_id"] = batch_id
    if state is not None:
        clauses.append("state = :state")
        params["state"] = state
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    rows = db.execute(text(f"SELECT * FROM admin_cards {where} ORDER BY id LIMIT :limit"), params)
    return [dict(row._mapping) for row in rows]


def card_now_holding(db: Session, account_id: int, other_than: int) -> str | None:
    """The number of the card whose account this one's value went into (a top-up redeemed it)."""
    return db.execute(
        select(t.cards.c.number)
        .where(t.cards.c.account_id == account_id, t.cards.c.id != other_than, t.cards.c.status != "redeemed")
        .order_by(t.cards.c.activated_at)
        .limit(1)
    ).scalar()
