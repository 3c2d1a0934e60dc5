"""Queries of the front desk: cards in stock and sold, who is online, sales per day, a card's sessions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from rlm_hotspot.db.enforcement import wake_worker
from rlm_hotspot.db.engine import rows_changed
from rlm_hotspot.db.rows import every

# A card in stock: never used, not blocked, not sold yet, and its batch not past its hard expiry or its
# activation deadline.
_IN_STOCK = """c.status = 'new' AND NOT c.blocked
               AND NOT EXISTS (SELECT 1 FROM card_sales cs WHERE cs.card_id = c.id)
               AND (b.expires_at IS NULL OR b.expires_at > :now)
               AND (b.use_before IS NULL OR b.use_before > :now)"""


def stock(db: Session, now: datetime) -> list[dict[str, object]]:
    """Batches with cards left to sell, cheapest face value first."""
    rows = db.execute(
        text(
            f"""SELECT b.id AS batch_id, b.series, b.name, b.face_value, b.pin_mode, h.name AS hotspot,
                       count(*) AS in_stock
                FROM cards c JOIN card_batches b ON b.id = c.batch_id
                LEFT JOIN hotspots h ON h.id = b.hotspot_id
                WHERE {_IN_STOCK}
                GROUP BY b.id, h.name ORDER BY b.face_value, b.series"""
        ),
        {"now": now},
    )
    return [dict(r._mapping) for r in rows]


def presets_in_stock(db: Session, now: datetime) -> list[dict[str, object]]:
    """Each hotspot's face-value presets with the cards in stock that sell under them (encrypted PINs, a
    batch of that face value valid at the hotspot: its own or one for any hotspot)."""
    rows = db.execute(
        text(
            f"""SELECT p.hotspot_id, h.name AS hotspot, p.face_value, count(c.id) AS in_stock
                FROM face_value_presets p JOIN hotspots h ON h.id = p.hotspot_id
                LEFT JOIN (card_batches b JOIN cards c ON c.batch_id = b.id AND b.pin_mode = 'encrypted'
                           AND {_IN_STOCK})
                       ON b.face_value = p.face_value AND (b.hotspot_id IS NULL OR b.hotspot_id = p.hotspot_id)
                GROUP BY p.hotspot_id, h.name, p.face_value ORDER BY h.name, p.face_value"""
        ),
        {"now": now},
    )
    return [dict(r._mapping) for r in rows]


def batches_for_preset(db: Session, hotspot_id: int, face_value: int, now: datetime) -> list[int]:
    """The batches a preset sells from, in the order to take their cards: the soonest to lapse first (then
    the oldest), the hotspot's own before one for any hotspot."""
    return list(
        db.execute(
            text(
                f"""SELECT b.id FROM cards c JOIN card_batches b ON b.id = c.batch_id
                    WHERE b.face_value = :face_value AND b.pin_mode = 'encrypted'
                      AND (b.hotspot_id IS NULL OR b.hotspot_id = :hotspot_id) AND {_IN_STOCK}
                    GROUP BY b.id
                    ORDER BY least(b.use_before, b.expires_at) NULLS LAST, b.hotspot_id NULLS LAST, b.id"""
            ),
            {"face_value": face_value, "hotspot_id": hotspot_id, "now": now},
        ).scalars()
    )


def add_preset(db: Session, hotspot_id: int, face_value: int) -> bool:
    """False: the hotspot had this preset already."""
    added = db.execute(
        text("INSERT INTO face_value_presets (hotspot_id, face_value) VALUES (:h, :v) ON CONFLICT DO NOTHING"),
        {"h": hotspot_id, "v": face_value},
    )
    return rows_changed(added) > 0


def remove_preset(db: Session, hotspot_id: int, face_value: int) -> bool:
    """False: there was no such preset."""
    removed = db.execute(
        text("DELETE FROM face_value_presets WHERE hotspot_id = :h AND face_value = :v"),
        {"h": hotspot_id, "v": face_value},
    )
    return rows_changed(removed) > 0


def claim_for_sale(db: Session, batch_id: int, count: int, now: datetime) -> dict[int, str]:
    """Lock up to `count` cards in stock of a batch (id: number); two desks selling at once never get the
    same card."""
    rows = db.execute(
        text(
            f"""SELECT c.id, c.number FROM cards c JOIN card_batches b ON b.id = c.batch_id
                WHERE c.batch_id = :batch_id AND {_IN_STOCK}
                ORDER BY c.id LIMIT :count FOR UPDATE OF c SKIP LOCKED"""
        ),
        {"batch_id": batch_id, "count": count, "now": now},
    )
    return {int(r.id): str(r.number) for r in rows}


def insert_sales(db: Session, card_ids: list[int], *, staff_id: int, price: int, now: datetime) -> int:
    """Record the sale of these cards; a card sold already is left as it was. Returns how many were new."""
    inserted = db.execute(
        text(
            """INSERT INTO card_sales (card_id, staff_id, sold_at, price)
               SELECT unnest(CAST(:ids AS bigint[])), :staff_id, :now, :price
               ON CONFLICT (card_id) DO NOTHING"""
        ),
        {"ids": card_ids, "staff_id": staff_id, "now": now, "price": price},
    )
    return rows_changed(inserted)


def sale_of(db: Session, card_id: int) -> dict[str, object] | None:
    row = db.execute(
        text(
            """SELECT cs.sold_at, cs.price, s.name AS sold_by FROM card_sales cs JOIN staff s ON s.id = cs.staff_id
               WHERE cs.card_id = :id"""
        ),
        {"id": card_id},
    ).first()
    return None if row is None else dict(row._mapping)


def sessions_of_card(db: Session, card_id: int, limit: int = 20) -> list[dict[str, object]]:
    rows = db.execute(
        text(
            """SELECT s.id, s.status, h.name AS hotspot, h.timezone, s.source, s.framed_ip::text AS ip,
                      s.calling_station_id AS mac, s.started_at, s.stopped_at, s.terminate_cause, s.seconds,
                      s.input_octets, s.output_octets, s.charged,
                      EXISTS (SELECT 1 FROM disconnects d WHERE d.session_id = s.id AND d.done_at IS NULL)
                          AS end_requested
               FROM sessions s JOIN hotspots h ON h.id = s.hotspot_id
               WHERE s.card_id = :card_id ORDER BY s.started_at DESC LIMIT :limit"""
        ),
        {"card_id": card_id, "limit": limit},
    )
    return [dict(r._mapping) for r in rows]


def online(db: Session) -> list[dict[str, object]]:
    """Every session not closed, per hotspot, longest online first."""
    rows = db.execute(
        text(
            """SELECT s.id, h.name AS hotspot, h.timezone, c.number AS card_number, s.status, s.source,
                      s.framed_ip::text AS ip, s.calling_station_id AS mac, s.started_at, s.seconds,
                      s.input_octets, s.output_octets, s.charged, a.balance
               FROM sessions s JOIN hotspots h ON h.id = s.hotspot_id JOIN cards c ON c.id = s.card_id
               LEFT JOIN accounts a ON a.id = s.account_id
               WHERE s.status <> 'closed' ORDER BY h.name, s.started_at"""
        )
    )
    return [dict(r._mapping) for r in rows]


def queue_end(db: Session, session_id: int, now: datetime) -> bool:
    """Ask the worker to end a session at once (RADIUS: Disconnect-Request; standalone: close its gate),
    the way a guest's logout does; False if the session is closed already."""
    row = db.execute(
        text(
            """INSERT INTO disconnects (session_id, reason, requested_at)
               SELECT id, 'logout', :now FROM sessions WHERE id = :id AND status <> 'closed'
               ON CONFLICT (session_id) WHERE done_at IS NULL
               DO UPDATE SET reason = 'logout', requested_at = EXCLUDED.requested_at, attempts = 0,
                             last_attempt_at = NULL, outcome = NULL
               RETURNING id"""
        ),
        {"id": session_id, "now": now},
    ).first()
    if row is None:
        return False
    wake_worker(db)
    return True


@dataclass(frozen=True, slots=True)
class SalesLine:
    sold_by: str
    face_value: int
    cards: int
    takings: int


def sales_between(db: Session, since: datetime, until: datetime) -> list[SalesLine]:
    """Cards sold at the desk in a period, per seller and face value."""
    rows = db.execute(
        text(
            """SELECT st.name AS sold_by, b.face_value, count(*) AS cards, sum(cs.price)::bigint AS takings
               FROM card_sales cs JOIN staff st ON st.id = cs.staff_id JOIN cards c ON c.id = cs.card_id
               JOIN card_batches b ON b.id = c.batch_id
               WHERE cs.sold_at >= :since AND cs.sold_at < :until
               GROUP BY st.name, b.face_value ORDER BY st.name, b.face_value"""
        ),
        {"since": since, "until": until},
    )
    return every(SalesLine, rows)


def takings_per_day(db: Session, since: datetime, until: datetime, timezone: str) -> list[tuple[str, int]]:
    """(local day, takings) for each day of the period that had sales."""
    rows = db.execute(
        text(
            """SELECT to_char(sold_at AT TIME ZONE :tz, 'YYYY-MM-DD') AS day, sum(price)::bigint AS takings
               FROM card_sales WHERE sold_at >= :since AND sold_at < :until GROUP BY 1 ORDER BY 1"""
        ),
        {"since": since, "until": until, "tz": timezone},
    )
    return [(r.day, int(r.takings)) for r in rows]


@dataclass(frozen=True, slots=True)
class RefundsLine:
    refunded_by: str
    refunds: int
    paid_out: int


def refunds_between(db: Session, since: datetime, until: datetime) -> list[RefundsLine]:
    """Refunds paid at the desk in a period, per staff member: how many and how much."""
    rows = db.execute(
        text(
            """SELECT st.name AS refunded_by, count(*) AS refunds, -sum(l.amount)::bigint AS paid_out
               FROM ledger l JOIN ledger_operators o ON o.ledger_id = l.id JOIN staff st ON st.id = o.staff_id
               WHERE l.cause = 'refund' AND l.created_at >= :since AND l.created_at < :until
               GROUP BY st.name ORDER BY st.name"""
        ),
        {"since": since, "until": until},
    )
    return every(RefundsLine, rows)


@dataclass(frozen=True, slots=True)
class HourLine:
    hour: int
    used: int
    takings: int
    sessions: int
    seconds: int
    bytes: int


def per_hour(db: Session, since: datetime, until: datetime, timezone: str) -> list[HourLine]:
    """The 24 local hours of a day: money used by guests (time, traffic, expiry), takings at the desk, and
    the sessions started in each hour with their online time and bytes."""
    rows = db.execute(
        text(
            """WITH used AS (
                   SELECT extract(hour FROM created_at AT TIME ZONE :tz)::int AS hour, -sum(amount)::bigint AS used
                   FROM ledger WHERE cause IN ('time', 'traffic', 'expiry')
                     AND created_at >= :since AND created_at < :until GROUP BY 1
               ), sold AS (
                   SELECT extract(hour FROM sold_at AT TIME ZONE :tz)::int AS hour, sum(price)::bigint AS takings
                   FROM card_sales WHERE sold_at >= :since AND sold_at < :until GROUP BY 1
               ), online AS (
                   SELECT extract(hour FROM started_at AT TIME ZONE :tz)::int AS hour, count(*) AS sessions,
                          sum(seconds)::bigint AS seconds, sum(input_octets + output_octets)::bigint AS bytes
                   FROM sessions WHERE started_at >= :since AND started_at < :until GROUP BY 1
               )
               SELECT h.hour, coalesce(u.used, 0) AS used, coalesce(s.takings, 0) AS takings,
                      coalesce(o.sessions, 0) AS sessions, coalesce(o.seconds, 0) AS seconds,
                      coalesce(o.bytes, 0) AS bytes
               FROM generate_series(0, 23) AS h(hour)
               LEFT JOIN used u USING (hour) LEFT JOIN sold s USING (hour) LEFT JOIN online o USING (hour)
               ORDER BY h.hour"""
        ),
        {"since": since, "until": until, "tz": timezone},
    )
    return every(HourLine, rows)


def record_operator(db: Session, ledger_key: str, staff_id: int, reason: str) -> None:
    """Name the person behind the ledger row posted with this idempotency key."""
    db.execute(
        text(
            """INSERT INTO ledger_operators (ledger_id, staff_id, reason)
               SELECT id, :staff_id, :reason FROM ledger WHERE idempotency_key = :key"""
        ),
        {"key": ledger_key, "staff_id": staff_id, "reason": reason},
    )


def batches(db: Session, batch_id: int | None = None) -> list[dict[str, object]]:
    """Every batch (or the one named) with its use (the admin_sales view) and how many of its cards the
    desk sold."""
    only_one = "WHERE s.batch_id = :batch_id" if batch_id is not None else ""
    rows = db.execute(
        text(
            f"""SELECT s.*, b.pin_mode, h.name AS hotspot,
                      (SELECT count(*) FROM card_sales cs JOIN cards c ON c.id = cs.card_id
                        WHERE c.batch_id = s.batch_id) AS cards_sold
               FROM admin_sales s JOIN card_batches b ON b.id = s.batch_id
               LEFT JOIN hotspots h ON h.id = b.hotspot_id {only_one} ORDER BY s.batch_id DESC"""
        ),
        {"batch_id": batch_id},
    )
    return [dict(r._mapping) for r in rows]
