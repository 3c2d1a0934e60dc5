"""Queries of the NetFlow import: batches, the sessions that may hold the import's IPs, traffic debits.

An import transaction (one or more batches) costs a fixed handful of statements whatever its size:
one INSERT recording the batches, one SELECT of the sessions that may hold the import's IPs, COPY of
the counts no session held (if any), one statement applying every debit (ledger rows, balances, session
counters) from arrays, one UPDATE storing the totals.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from itertools import repeat
from typing import Any, NamedTuple

from sqlalchemy import text
from sqlalchemy.orm import Session

from rlm_hotspot.db.arrays import array_literal
from rlm_hotspot.db.ledger import POSTED_ENTRIES_MOVE_BALANCES
from rlm_hotspot.db.rows import every, one

_IMPORT_LOCK = 0x666C6F77  # 'flow': with the hotspot id, one importer per hotspot at a time


def begin_import(db: Session, hotspot_id: int) -> None:
    """Serialize importers of one hotspot until the transaction ends (they update the same counters), and
    give the debit statement's hash joins and aggregates room for the sessions of a large backlog."""
    db.execute(text("SELECT pg_advisory_xact_lock(:lock, :id)"), {"lock": _IMPORT_LOCK, "id": hotspot_id})
    db.execute(text("SET LOCAL work_mem = '64MB'"))


@dataclass(frozen=True, slots=True)
class FlowHotspotRecord:
    """What the NetFlow import needs of a hotspot."""

    id: int
    name: str
    timezone: str
    tariff_id: int
    traffic_meter: str
    max_rate_kbps: int


def hotspot(db: Session, name: str) -> FlowHotspotRecord | None:
    return one(
        FlowHotspotRecord,
        db.execute(
            text("SELECT id, name, timezone, tariff_id, traffic_meter, max_rate_kbps FROM hotspots WHERE name = :name"),
            {"name": name},
        ).first(),
    )


@dataclass(frozen=True)
class BatchHeader:
    name: str
    direction: str
    bin_start: datetime
    bin_end: datetime
    records: int
    malformed: int


def begin_batches(db: Session, hotspot_id: int, headers: Sequence[BatchHeader], now: datetime) -> dict[str, int]:
    """Record the batches; returns name → id of those not imported before (the exactly-once gate)."""
    rows = db.execute(
        text(
            """
            INSERT INTO flow_batches (hotspot_id, name, direction, bin_start, bin_end, records, malformed,
                                      imported_at)
            SELECT :hotspot_id, b.*, :now
            FROM unnest(CAST(:names AS text[]), CAST(:directions AS text[]), CAST(:bin_starts AS timestamptz[]),
                        CAST(:bin_ends AS timestamptz[]), CAST(:records AS integer[]), CAST(:malformed AS integer[]))
                 AS b(name, direction, bin_start, bin_end, records, malformed)
            ON CONFLICT (hotspot_id, name) DO NOTHING
            RETURNING id, name
            """
        ),
        {
            "hotspot_id": hotspot_id,
            "names": [h.name for h in headers],
            "directions": [h.direction for h in headers],
            "bin_starts": [h.bin_start for h in headers],
            "bin_ends": [h.bin_end for h in headers],
            "records": [h.records for h in headers],
            "malformed": [h.malformed for h in headers],
            "now": now,
        },
    )
    return {row.name: row.id for row in rows}


# The sessions of the hotspot that may hold one of the import's IPs at some bin of it: started before the
# last bin ends, not stopped more than the grace window before the first bin starts. The rule picking the
# holder of each (IP, bin) among them is the core's (rlm_hotspot.core.attribution). Two lookups, each
# bounded by what is live or recent, never by the history behind it: the sessions still open (by IP,
# sql/009's partial index), and the ones stopped since the window began (by stop time). Each row carries
# the IP as the caller wrote it, so the caller matches rows to its counts without parsing addresses.
_CLAIM_COLUMNS = """
    ips.ip, s.id AS session_id, s.started_at, s.stopped_at, s.account_id, s.card_id, s.tariff_id,
    s.traffic_cost_num
"""
_IP_CLAIMS = text(
    f"""
    SELECT {_CLAIM_COLUMNS}
    FROM unnest(CAST(:ips AS text[])) AS ips(ip)
    JOIN sessions s ON s.framed_ip = CAST(ips.ip AS inet) AND s.hotspot_id = :hotspot_id
     AND s.started_at < :started_before AND s.stopped_at IS NULL
    UNION ALL
    SELECT {_CLAIM_COLUMNS}
    FROM unnest(CAST(:ips AS text[])) AS ips(ip)
    JOIN sessions s ON s.framed_ip = CAST(ips.ip AS inet) AND s.hotspot_id = :hotspot_id
     AND s.started_at < :started_before AND s.stopped_at >= :stopped_since
    """
)


class IpClaim(NamedTuple):
    """A session that may hold ``ip`` (as the caller wrote it), with what billing its bytes needs.

    A plain named tuple, not a Row: an import reads its fields some 200,000 times, and a Row's attribute
    access is twenty times slower."""

    ip: str
    session_id: int
    started_at: datetime
    stopped_at: datetime | None
    account_id: int | None  # None: a RADIUS session still waiting for its Accounting-Start
    card_id: int
    tariff_id: int
    traffic_cost_num: int


def ip_claims(
    db: Session, *, hotspot_id: int, ips: Iterable[str], started_before: datetime, stopped_since: datetime
) -> list[IpClaim]:
    """The sessions of the hotspot that may hold one of ``ips`` at some time in [stopped_since, started_before)."""
    params = {
        "ips": array_literal(ips),
        "hotspot_id": hotspot_id,
        "started_before": started_before,
        "stopped_since": stopped_since,
    }
    return list(map(IpClaim._make, db.execute(_IP_CLAIMS, params)))


@dataclass(frozen=True)
class CountRows:
    """Counts of one batch as parallel columns (ip, bin start, free?, bytes)."""

    batch_id: int
    ips: Sequence[str]
    bin_starts: Sequence[datetime]
    free: Sequence[bool]
    sizes: Sequence[int]


def _copy_text(batches: Iterable[CountRows]) -> io.StringIO:
    """COPY text of (batch id, ip, bin start, free?, bytes) rows.

    Built column-wise with map/zip/join (no Python code runs per count): a backlog with no session to
    bill can hold hundreds of thousands of counts. Bin starts are formatted once per distinct bin.
    """
    buffer = io.StringIO()
    stamps: dict[datetime, str] = {}
    flags = ("f", "t")
    for rows in batches:
        for start in set(rows.bin_starts) - stamps.keys():
            stamps[start] = start.isoformat()
        columns = (
            repeat(str(rows.batch_id), len(rows.ips)),
            rows.ips,
            map(stamps.__getitem__, rows.bin_starts),
            map(flags.__getitem__, rows.free),
            map(str, rows.sizes),
        )
        if rows.ips:
            buffer.write("\n".join(map("\t".join, zip(*columns, strict=True))))
            buffer.write("\n")
    buffer.seek(0)
    return buffer


def store_unattributed(db: Session, batches: Iterable[CountRows]) -> None:
    """Keep counts no session held (never billed, never dropped) for the report."""
    cursor = db.connection().connection.cursor()
    try:
        cursor.copy_expert(
            "COPY unattributed_traffic (batch_id, ip, bin_start, free, bytes) FROM STDIN", _copy_text(batches)
        )
    finally:
        cursor.close()


def record_totals(db: Session, batch_ids: Sequence[int], totals: dict[str, int]) -> None:
    """Link the transaction's batches to its first one, which stores the transaction's totals."""
    db.execute(
        text(
            """
            UPDATE flow_batches
            SET debit_batch_id = :first,
                sessions = CASE WHEN id = :first THEN :sessions ELSE 0 END,
                billable_bytes = CASE WHEN id = :first THEN :billable_bytes ELSE 0 END,
                free_bytes = CASE WHEN id = :first THEN :free_bytes ELSE 0 END,
                unattributed_bytes = CASE WHEN id = :first THEN :unattributed_bytes ELSE 0 END,
                debited = CASE WHEN id = :first THEN :debited ELSE 0 END
            WHERE id = ANY(CAST(:ids AS bigint[]))
            """
        ),
        {"first": min(batch_ids), "ids": array_literal(batch_ids), **totals},
    )


@dataclass(frozen=True)
class SessionDebits:
    """Parallel columns, one element per session: what one import adds to each session and account."""

    session_ids: Sequence[int]
    account_ids: Sequence[int]
    card_ids: Sequence[int]
    amounts: Sequence[int]
    billable_bytes: Sequence[int]
    added_cost_num: Sequence[int]
    input_octets: Sequence[int]
    output_octets: Sequence[int]


# Ledger rows only for a non-zero debit, keyed by the caller's prefix (the import's first batch, or the
# quarantine row released) and the session, so a replay moves nothing even past the batch gate. Balances
# move by the sum of the rows actually inserted; session counters and rating state move relatively
# (charged = charged + debit), so a concurrent time update of the same session is not overwritten.
_APPLY = text(
    f"""
    WITH debit AS (
        SELECT * FROM unnest(CAST(:session_ids AS bigint[]), CAST(:account_ids AS bigint[]),
                             CAST(:card_ids AS bigint[]), CAST(:amounts AS bigint[]),
                             CAST(:billable_bytes AS bigint[]), CAST(:added_cost_num AS bigint[]),
                             CAST(:input_octets AS bigint[]), CAST(:output_octets AS bigint[]))
            AS d(session_id, account_id, card_id, amount, bytes, added_cost_num, input_octets, output_octets)
    ), entry AS (
        INSERT INTO ledger (account_id, amount, cause, idempotency_key, card_id, session_id, bytes, note, created_at)
        SELECT account_id, -amount, 'traffic', :key_prefix || session_id, card_id,
               session_id, bytes, :note, :now
        FROM debit WHERE amount > 0
{POSTED_ENTRIES_MOVE_BALANCES}, counters AS (
        UPDATE sessions s SET input_octets = s.input_octets + d.input_octets,
                              output_octets = s.output_octets + d.output_octets,
                              traffic_cost_num = s.traffic_cost_num + d.added_cost_num,
                              charged = s.charged + d.amount,
                              netflow_billable_bytes = s.netflow_billable_bytes + d.bytes
        FROM debit d WHERE s.id = d.session_id
    )
    SELECT id FROM moved_balance WHERE balance <= 0 ORDER BY id
    """
)


def apply_debits(db: Session, debits: SessionDebits, *, key_prefix: str, note: str, now: datetime) -> list[int]:
    """Apply one import's debits in one statement (ledger keys ``<key_prefix><session id>``); returns the
    accounts now at or below zero."""
    columns = {name: array_literal(values) for name, values in debits.__dict__.items()}
    params = {**columns, "key_prefix": key_prefix, "note": note, "now": now}
    return list(db.execute(_APPLY, params).scalars())


@dataclass(frozen=True)
class HeldRow:
    """One row of the quarantine (sql/012), source 'netflow'."""

    reason: str
    quantity: str
    held: int
    reported: int | None
    session_id: int | None
    hotspot_id: int
    identity: str
    detail: dict[str, object]
    idempotency_key: str


def hold_traffic(db: Session, rows: Sequence[HeldRow], now: datetime) -> None:
    """Store excesses in the quarantine; a key stored before (a re-delivered record) is held once."""
    db.execute(
        text(
            """
            INSERT INTO quarantine (source, reason, quantity, held, reported, session_id, hotspot_id, identity,
                                    detail, received_at, idempotency_key)
            VALUES ('netflow', :reason, :quantity, CAST(:held AS numeric), CAST(:reported AS numeric), :session_id,
                    :hotspot_id, :identity, CAST(:detail AS jsonb), :now, :idempotency_key)
            ON CONFLICT (idempotency_key) DO NOTHING
            """
        ),
        [
            {
                **row.__dict__,
                "held": str(row.held),
                "reported": None if row.reported is None else str(row.reported),
                "detail": json.dumps(row.detail),
                "now": now,
            }
            for row in rows
        ],
    )


@dataclass(frozen=True, slots=True)
class SessionMeter:
    """A session's traffic rating state."""

    session_id: int
    hotspot_id: int
    account_id: int | None
    card_id: int
    tariff_id: int
    traffic_cost_num: int
    input_octets: int
    output_octets: int
    timezone: str


@dataclass(frozen=True, slots=True)
class HeldTraffic:
    """A quarantine row, with the meter of the session it names (None: it names none)."""

    id: int
    source: str
    state: str
    quantity: str
    held: Decimal
    detail: dict[str, Any]
    meter: SessionMeter | None


_SESSION_METER = """
    SELECT s.id AS session_id, s.hotspot_id, s.account_id, s.card_id, s.tariff_id, s.traffic_cost_num,
           s.input_octets, s.output_octets, h.timezone
    FROM sessions s JOIN hotspots h ON h.id = s.hotspot_id
    WHERE s.id = :id"""


def held_traffic(db: Session, quarantine_id: int) -> HeldTraffic | None:
    """Locked until the transaction ends (two releases of one row wait for each other)."""
    row = db.execute(
        text("SELECT id, source, state, quantity, held, detail, session_id FROM quarantine WHERE id = :id FOR UPDATE"),
        {"id": quarantine_id},
    ).first()
    if row is None:
        return None
    meter = None if row.session_id is None else session_meter(db, row.session_id)
    return HeldTraffic(row.id, row.source, row.state, row.quantity, row.held, row.detail, meter)


def session_meter(db: Session, session_id: int) -> SessionMeter:
    """The session's meter as it is now (it exists: a quarantine row or a caller names it)."""
    return SessionMeter(**db.execute(text(_SESSION_METER), {"id": session_id}).one()._mapping)


@dataclass(frozen=True, slots=True)
class ExhaustedSession:
    session_id: int
    account_id: int
    balance: int
    hotspot_id: int
    nas_id: int | None
    source: str
    framed_ip: str | None
    acct_session_id: str | None


def exhausted_open_sessions(db: Session, hotspot_id: int | None = None) -> list[ExhaustedSession]:
    """Open sessions whose account balance is at or below zero: to be cut by the worker."""
    return every(
        ExhaustedSession,
        db.execute(
            text(
                """
                SELECT s.id AS session_id, s.account_id, a.balance, s.hotspot_id, s.nas_id, s.source,
                       s.framed_ip, s.acct_session_id
                FROM sessions s JOIN accounts a ON a.id = s.account_id
                WHERE s.stopped_at IS NULL AND a.balance <= 0
                  AND (CAST(:hotspot_id AS integer) IS NULL OR s.hotspot_id = :hotspot_id)
                ORDER BY s.id
                """
            ),
            {"hotspot_id": hotspot_id},
        ),
    )


@dataclass(frozen=True, slots=True)
class ImportTotals:
    """The latest batch of a hotspot and its totals over a window (sums of bigint come as numeric)."""

    last_batch: str | None
    last_bin_end: datetime | None
    last_imported_at: datetime | None
    batches: int
    records: int
    malformed: int
    billable_bytes: Decimal
    free_bytes: Decimal
    unattributed_bytes: Decimal
    debited: Decimal


def import_status(db: Session, hotspot_id: int, since: datetime) -> ImportTotals:
    """The latest batch and the totals since ``since`` for one hotspot."""
    row = db.execute(
        text(
            """
            SELECT last.name AS last_batch, last.bin_end AS last_bin_end, last.imported_at AS last_imported_at,
                   totals.batches, totals.records, totals.malformed, totals.billable_bytes, totals.free_bytes,
                   totals.unattributed_bytes, totals.debited
            FROM (SELECT count(*) AS batches, coalesce(sum(records), 0) AS records,
                         coalesce(sum(malformed), 0) AS malformed,
                         coalesce(sum(billable_bytes), 0) AS billable_bytes,
                         coalesce(sum(free_bytes), 0) AS free_bytes,
                         coalesce(sum(unattributed_bytes), 0) AS unattributed_bytes,
                         coalesce(sum(debited), 0) AS debited
                  FROM flow_batches WHERE hotspot_id = :hotspot_id AND imported_at >= :since) totals
            LEFT JOIN LATERAL (SELECT name, bin_end, imported_at FROM flow_batches WHERE hotspot_id = :hotspot_id
                               ORDER BY bin_end DESC, id DESC LIMIT 1) last ON true
            """
        ),
        {"hotspot_id": hotspot_id, "since": since},
    ).one()
    return ImportTotals(**row._mapping)
