"""Report queries: grouped sums over the ledger and the sessions, per batch, local day or hotspot."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import Session

# Each grouping key is a fixed SQL expression (never user text), chosen by name.
_GROUP_KEYS = {
    "day": "to_char({ts} AT TIME ZONE coalesce(h.timezone, 'UTC'), 'YYYY-MM-DD')",
    "hotspot": "coalesce(h.name, '(any hotspot)')",
    "batch": "coalesce(lpad(b.series::text, 4, '0') || coalesce(' ' || b.name, ''), '(none)')",
}
_LEDGER_JOINS = """
    FROM ledger l
    LEFT JOIN sessions s ON s.id = l.session_id
    LEFT JOIN cards c ON c.id = coalesce(l.card_id, s.card_id)
    LEFT JOIN card_batches b ON b.id = c.batch_id
    LEFT JOIN hotspots h ON h.id = coalesce(s.hotspot_id, b.hotspot_id)
"""


def group_keys() -> tuple[str, ...]:
    return tuple(_GROUP_KEYS)


def sales(db: Session, by: str, since: datetime, until: datetime) -> list[dict[str, object]]:
    """Money loaded onto accounts (first use of a card, top-ups) per group."""
    key = _GROUP_KEYS[by].format(ts="l.created_at")
    sql = f"""
        SELECT {key} AS {by},
               count(*) FILTER (WHERE l.cause = 'card_load') AS cards_activated,
               count(*) FILTER (WHERE l.cause = 'topup') AS topups,
               sum(l.amount)::bigint AS value_loaded
        {_LEDGER_JOINS}
        WHERE l.cause IN ('card_load', 'topup') AND l.amount > 0
          AND l.created_at >= :since AND l.created_at < :until
        GROUP BY 1 ORDER BY 1
    """
    return _rows(db, sql, since, until)


def revenue(db: Session, by: str, since: datetime, until: datetime) -> list[dict[str, object]]:
    """Money consumed (time, traffic, expiry write-offs) per group."""
    key = _GROUP_KEYS[by].format(ts="l.created_at")
    sql = f"""
        SELECT {key} AS {by},
               (-coalesce(sum(l.amount) FILTER (WHERE l.cause = 'time'), 0))::bigint AS time_revenue,
               (-coalesce(sum(l.amount) FILTER (WHERE l.cause = 'traffic'), 0))::bigint AS traffic_revenue,
               (-coalesce(sum(l.amount) FILTER (WHERE l.cause = 'expiry'), 0))::bigint AS expired_value,
               (-sum(l.amount))::bigint AS total
        {_LEDGER_JOINS}
        WHERE l.cause IN ('time', 'traffic', 'expiry')
          AND l.created_at >= :since AND l.created_at < :until
        GROUP BY 1 ORDER BY 1
    """
    return _rows(db, sql, since, until)


def usage(db: Session, by: str, since: datetime, until: datetime) -> list[dict[str, object]]:
    """Sessions, online time and bytes per group (sessions started in the period)."""
    key = _GROUP_KEYS[by].format(ts="s.started_at")
    sql = f"""
        SELECT {key} AS {by}, count(*) AS sessions, count(DISTINCT s.card_id) AS cards,
               sum(s.seconds)::bigint AS seconds, sum(s.input_octets)::bigint AS upload_bytes,
               sum(s.output_octets)::bigint AS download_bytes, sum(s.charged)::bigint AS charged
        FROM sessions s
        JOIN cards c ON c.id = s.card_id
        JOIN card_batches b ON b.id = c.batch_id
        JOIN hotspots h ON h.id = s.hotspot_id
        WHERE s.started_at >= :since AND s.started_at < :until
        GROUP BY 1 ORDER BY 1
    """
    return _rows(db, sql, since, until)


@dataclass(frozen=True, slots=True)
class StatementLine:
    """One ledger row of an account, with the running balance and the time zone of the hotspot concerned."""

    id: int
    created_at: datetime
    timezone: str
    cause: str
    amount: int
    balance_after: int
    seconds: int | None
    bytes: int | None
    session_id: int | None
    card_number: str | None
    note: str | None

    @property
    def local_time(self) -> datetime:
        return self.created_at.astimezone(ZoneInfo(self.timezone))


def statement(db: Session, account_id: int) -> list[StatementLine]:
    """Every ledger row of an account, oldest first."""
    sql = f"""
        SELECT l.id, l.created_at, coalesce(h.timezone, 'UTC') AS timezone, l.cause, l.amount,
               (sum(l.amount) OVER (ORDER BY l.id))::bigint AS balance_after, l.seconds, l.bytes,
               l.session_id, c.number AS card_number, l.note
        {_LEDGER_JOINS}
        WHERE l.account_id = :account_id
        ORDER BY l.id
    """
    return [StatementLine(**r._mapping) for r in db.execute(text(sql), {"account_id": account_id})]


def _rows(db: Session, sql: str, since: datetime, until: datetime) -> list[dict[str, object]]:
    return [dict(r._mapping) for r in db.execute(text(sql), {"since": since, "until": until})]
