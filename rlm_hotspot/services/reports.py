"""Reports for admins: sales, usage, revenue and the per-card statement for disputes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from rlm_hotspot.db import reports as q
from rlm_hotspot.services.cards import find_card
from rlm_hotspot.services.errors import ServiceError

REPORTS = {"sales": q.sales, "usage": q.usage, "revenue": q.revenue}


def report(db: Session, kind: str, by: str, since: datetime, until: datetime) -> list[dict[str, object]]:
    if kind not in REPORTS:
        raise ServiceError(f"unknown report {kind!r}: choose {', '.join(REPORTS)}")
    if by not in q.group_keys():
        raise ServiceError(f"reports group by {', '.join(q.group_keys())}")
    if since >= until:
        raise ServiceError("the report period is empty: --from must come before --to")
    return REPORTS[kind](db, by, since, until)


@dataclass(frozen=True)
class Statement:
    card_number: str
    status: str
    account_id: int | None
    balance: int | None
    rows: list[q.StatementLine]


def statement(db: Session, card_text: str) -> Statement:
    """Every ledger row of the card's account, times in the local time of the hotspot concerned."""
    card = find_card(db, card_text)
    rows = q.statement(db, card.account_id) if card.account_id is not None else []
    return Statement(card.number, card.status, card.account_id, card.balance, rows)
