"""Queries of the login and session hot paths (RADIUS hooks, portal heartbeats), each one round trip."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from rlm_hotspot.core.plausibility import pick_session
from rlm_hotspot.db.arrays import array_literal
from rlm_hotspot.db.catalog import NasRecord
from rlm_hotspot.db.engine import Executor
from rlm_hotspot.db.ledger import POSTED_ENTRIES_MOVE_BALANCES
from rlm_hotspot.db.prepared import Prepared
from rlm_hotspot.db.rows import one

CANDIDATES = 4  # sessions of one NAS, id and user an accounting packet is matched against
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def whole_seconds(delta: timedelta) -> int:
    """A duration in whole seconds, rounded down (what the session rows and the plausibility bounds count)."""
    return delta // timedelta(seconds=1)


def posix_seconds(moment: datetime) -> int:
    return whole_seconds(moment - _EPOCH)


# A session holds a simultaneous-use slot while it is live: the rule is the SQL function
# session_is_live (sql/005_hot_paths.sql), shared with login_snapshot and radius_login (sql/006, 010).
LIVE_SESSION = "session_is_live(s.status, s.last_seen_at, h.interim_interval, h.stale_grace, :now, :pending_ttl)"


@dataclass(frozen=True)
class LoginSnapshot:
    """Everything a login decision needs, read in one query: SQL's login_facts, field by field in its order."""

    # the card (None fields when the number is unknown)
    card_id: int | None
    number: str | None
    status: str | None
    blocked: bool | None
    account_id: int | None
    activated_at: datetime | None
    pin_secret: bytes | None
    pin_key_id: int | None
    face_value: int | None
    batch_tariff_id: int | None
    batch_hotspot_id: int | None
    valid_from: datetime | None
    use_before: datetime | None
    validity_seconds: int | None
    expires_at: datetime | None
    balance: int | None
    live_sessions: int
    # where the guest is
    nas_id: int | None
    nas_vendor: str | None
    hotspot_id: int | None
    hotspot_timezone: str | None
    hotspot_tariff_id: int | None
    hotspot_mode: str | None
    traffic_meter: str | None
    interim_interval: int | None
    idle_timeout: int | None
    max_session_seconds: int | None
    # lockout
    card_failures: int
    client_failures: int


_SNAPSHOT = Prepared(
    "hs_login_snapshot",
    "SELECT * FROM login_snapshot(:number, CAST(:nas_ip AS inet), :hotspot_id, CAST(:client AS text), :now, "
    ":window, :pending_ttl)",
)


def login_snapshot(
    db: Executor,
    *,
    number: str,
    nas_ip: str | None,
    hotspot_id: int | None,
    client: str | None,
    now: datetime,
    lockout_window_s: int,
    pending_ttl_s: int,
) -> LoginSnapshot:
    row = _SNAPSHOT(
        db,
        {
            "number": number,
            "nas_ip": nas_ip,
            "hotspot_id": hotspot_id,
            "client": client,
            "now": now,
            "window": lockout_window_s,
            "pending_ttl": pending_ttl_s,
        },
    ).one()
    return _snapshot(dict(row._mapping))


def _snapshot(values: dict[str, Any]) -> LoginSnapshot:
    if values["pin_secret"] is not None:
        values["pin_secret"] = bytes(values["pin_secret"])
    return LoginSnapshot(**values)


def lock_card_and_count_live(db: Session, card_id: int, now: datetime, pending_ttl_s: int) -> int:
    """Lock the card row (serialising logins of one card) and count its live sessions."""
    db.execute(text("SELECT id FROM cards WHERE id = :id FOR UPDATE"), {"id": card_id})
    return int(
        db.execute(
            text(
                f"""SELECT count(*) FROM sessions s JOIN hotspots h ON h.id = s.hotspot_id
                    WHERE s.card_id = :id AND s.status <> 'closed' AND ({LIVE_SESSION})"""
            ),
            {"id": card_id, "now": now, "pending_ttl": pending_ttl_s},
        ).scalar_one()
    )


# radiusd makes the login's database call itself, through an rlm_sql xlat (sql/010): the arguments go in
# as one hex-encoded JSON text (hex passes rlm_sql's escaping unchanged), the result comes back as JSON.


@dataclass(frozen=True)
class RadiusLoginCall:
    """The arguments of radius_login_json (sql/024): what the first hook call hands the database call."""

    number: str
    nas_ip: str
    client: str | None
    at: datetime
    window: int
    pending_ttl: int
    token: str
    username: str
    calling_station_id: str | None

    def encode(self) -> str:
        return _hex_json({**vars(self), "at": self.at.isoformat()})


@dataclass(frozen=True)
class RadiusLoginResult:
    """What radius_login_json returned: the snapshot read under the card lock, the slot if one was taken,
    and the call's own number, time and token."""

    snapshot: LoginSnapshot
    reserved_session_id: int | None  # the pending session holding the slot (sql/027); None: no slot taken
    number: str
    at: datetime
    token: str


_SNAPSHOT_FIELDS = tuple(field.name for field in fields(LoginSnapshot))  # login_facts order
_TIMESTAMPS = ("activated_at", "valid_from", "use_before", "expires_at")


def parse_radius_login(text: str) -> RadiusLoginResult:
    *values, session_id, number, at, token = json.loads(text)
    facts = dict(zip(_SNAPSHOT_FIELDS, values, strict=True))
    for name in _TIMESTAMPS:
        if facts[name] is not None:
            facts[name] = datetime.fromisoformat(facts[name])
    if facts["pin_secret"] is not None:
        facts["pin_secret"] = bytes.fromhex(facts["pin_secret"])
    return RadiusLoginResult(
        snapshot=LoginSnapshot(**facts),
        reserved_session_id=session_id,
        number=number,
        at=datetime.fromisoformat(at),
        token=token,
    )


def radius_refusal(
    outcome: str, *, number: str, client: str | None, hotspot_id: int | None, at: datetime, session_id: int | None
) -> str:
    """The arguments of radius_login_refused (sql/027): record a refused login, giving back the slot of
    `session_id` when the database call reserved one."""
    arguments: dict[str, object] = {"outcome": outcome, "number": number, "client": client, "hotspot_id": hotspot_id,
                                    "at": at.isoformat()}  # fmt: skip
    if session_id is not None:
        arguments["session_id"] = session_id
    return _hex_json(arguments)


def _hex_json(values: dict[str, object]) -> str:
    return json.dumps(values, separators=(",", ":")).encode().hex()


def insert_session(db: Session, **values: object) -> int:
    columns = ", ".join(values)
    params = ", ".join(f":{name}" for name in values)
    return int(
        db.execute(text(f"INSERT INTO sessions ({columns}) VALUES ({params}) RETURNING id"), values).scalar_one()
    )


def record_attempt(
    db: Session,
    *,
    card_number: str,
    client: str | None,
    hotspot_id: int | None,
    source: str,
    outcome: str,
    now: datetime,
) -> None:
    db.execute(
        text(
            "INSERT INTO login_attempts (at, card_number, client, hotspot_id, source, outcome) "
            "VALUES (:now, :number, :client, :hotspot_id, :source, :outcome)"
        ),
        {
            "now": now,
            "number": card_number,
            "client": client,
            "hotspot_id": hotspot_id,
            "source": source,
            "outcome": outcome,
        },
    )


# -- accounting -------------------------------------------------------------------------------------

_SESSION_COLUMNS = """
    s.id, s.status, s.account_id, s.card_id, s.hotspot_id, s.tariff_id, s.nas_id, s.source, s.acct_session_id,
    s.username,
    s.auth_token, s.started_at, s.last_seen_at, s.last_heartbeat_at, s.stopped_at, s.terminate_cause,
    s.framed_ip, s.calling_station_id, s.seconds, s.input_octets, s.output_octets,
    s.time_cost_num, s.traffic_cost_num, s.charged, s.reported_seconds, s.reported_input_octets,
    s.reported_output_octets, s.counters_at, h.timezone, h.traffic_meter, h.max_rate_kbps, h.max_session_seconds,
    c.number AS card_number, c.status AS card_status
"""
_SESSION_FROM = """
    FROM sessions s JOIN hotspots h ON h.id = s.hotspot_id JOIN cards c ON c.id = s.card_id
"""


@dataclass(frozen=True, slots=True)
class SessionRow:
    """A session as accounting reads it (_SESSION_COLUMNS): its meter, its hotspot's rules, its card."""

    id: int
    status: str
    account_id: int | None
    card_id: int
    hotspot_id: int
    tariff_id: int
    nas_id: int | None
    source: str
    acct_session_id: str | None
    username: str | None
    auth_token: str
    started_at: datetime
    last_seen_at: datetime
    last_heartbeat_at: datetime | None
    stopped_at: datetime | None
    terminate_cause: str | None
    framed_ip: str | None
    calling_station_id: str | None
    seconds: int
    input_octets: int
    output_octets: int
    time_cost_num: int
    traffic_cost_num: int
    charged: int
    reported_seconds: int | None
    reported_input_octets: int | None
    reported_output_octets: int | None
    counters_at: datetime | None
    timezone: str
    traffic_meter: str
    max_rate_kbps: int
    max_session_seconds: int
    card_number: str
    card_status: str


def _lookup(name: str, where: str) -> dict[bool, Prepared]:
    """A session lookup, prepared with and without the row lock."""
    return _lookup_sql(name, f"SELECT {_SESSION_COLUMNS} {_SESSION_FROM} WHERE {where}")


def _lookup_sql(name: str, sql: str) -> dict[bool, Prepared]:
    """A query of one session (alias `s`), prepared with and without the session's row lock."""
    return {False: Prepared(name, sql), True: Prepared(f"{name}_locked", f"{sql} FOR UPDATE OF s")}


_BY_TOKEN = _lookup("hs_session_by_token", "s.auth_token = :token")
# the packet's user's latest sessions of that NAS and id (a session of another card is never a candidate).
# `nas_id = …`, not IS NOT DISTINCT FROM: that one is no index condition, so with 2,000,000 closed sessions
# each lookup read the whole of sessions_nas_acct_id for the id alone (~17,000 pages, 65 ms; 0.2 ms now).
_BY_ACCT_ID = _lookup(
    "hs_session_by_acct_id",
    "s.nas_id = CAST(:nas_id AS integer) AND s.acct_session_id = :acct_session_id "
    "AND (CAST(:username AS text) IS NULL OR s.username = :username OR c.number = :card_number) "
    f"ORDER BY s.started_at DESC, s.id DESC LIMIT {CANDIDATES}",
)


@dataclass(frozen=True)
class PacketUser:
    """Who an accounting packet is for: its User-Name as sent, and the card number it names (if it does)."""

    username: str | None
    card_number: str | None = None


def find_session(
    db: Session,
    *,
    nas_id: int,
    acct_session_id: str | None,
    token: str | None,
    user: PacketUser,
    sent: datetime,
    began: datetime | None,
    lock: bool = False,
) -> SessionRow | None:
    """The session an accounting packet was meant for: by our Class token, else the session of the NAS's
    session id and the packet's user that its times (`sent`, and `began` by its Acct-Session-Time) point
    at. Whether the packet really belongs to it is the caller's to decide."""
    if token:
        row = session_by_token(db, token, lock=lock)
        if row is not None:
            return row
    if acct_session_id is None:
        return None
    params = {
        "nas_id": nas_id,
        "acct_session_id": acct_session_id,
        "username": user.username,
        "card_number": user.card_number,
    }
    candidates = _BY_ACCT_ID[lock](db, params).all()
    starts = [(posix_seconds(row.started_at), row.status != "closed") for row in candidates]
    chosen = pick_session(starts, posix_seconds(sent), None if began is None else posix_seconds(began))
    return None if chosen is None else SessionRow(**candidates[chosen]._mapping)


def session_by_token(db: Session, token: str, *, lock: bool = False) -> SessionRow | None:
    return one(SessionRow, _BY_TOKEN[lock](db, {"token": token}).first())


@dataclass(frozen=True)
class SessionView:
    """A session with everything its status needs: the meter, the card's validity, the account's balance."""

    id: int
    token: str
    status: str
    account_id: int | None
    tariff_id: int
    source: str
    started_at: datetime
    last_heartbeat_at: datetime | None
    terminate_cause: str | None
    seconds: int
    input_octets: int
    output_octets: int
    time_cost_num: int
    traffic_cost_num: int
    charged: int
    timezone: str
    traffic_meter: str
    card_number: str
    activated_at: datetime | None
    valid_from: datetime | None
    use_before: datetime | None
    validity_seconds: int | None
    expires_at: datetime | None
    balance: int  # the account's, or the card's face value before its first use


_VIEW = """
    SELECT s.id, s.auth_token AS token, s.status, s.account_id, s.tariff_id, s.source, s.started_at,
           s.last_heartbeat_at, s.terminate_cause, s.seconds, s.input_octets, s.output_octets, s.time_cost_num,
           s.traffic_cost_num, s.charged, h.timezone, h.traffic_meter, c.number AS card_number, c.activated_at,
           b.valid_from, b.use_before, b.validity_seconds, b.expires_at,
           coalesce(a.balance, b.face_value) AS balance
    FROM sessions s JOIN hotspots h ON h.id = s.hotspot_id JOIN cards c ON c.id = s.card_id
    JOIN card_batches b ON b.id = c.batch_id LEFT JOIN accounts a ON a.id = c.account_id
"""
_VIEW_BY_TOKEN = _lookup_sql("hs_session_view_by_token", f"{_VIEW} WHERE s.auth_token = :token")
_VIEWS_BY_TOKENS = Prepared("hs_session_views_by_tokens", f"{_VIEW} WHERE s.auth_token = ANY (CAST(:tokens AS text[]))")


def session_view_by_token(db: Executor, token: str, *, lock: bool = False) -> SessionView | None:
    """The portal's status and heartbeat read: the session and its card and balance, in one query."""
    row = _VIEW_BY_TOKEN[lock].first_row(db, {"token": token})
    return None if row is None else SessionView(**row)


def session_views_by_tokens(db: Executor, tokens: list[str]) -> dict[str, SessionView]:
    """`session_view_by_token` for many sessions in one query, by token (a token not found is left out)."""
    rows = _VIEWS_BY_TOKENS(db, {"tokens": tokens}).mappings()
    return {row["token"]: SessionView(**row) for row in rows}


def session_by_id(db: Session, session_id: int, *, lock: bool = False) -> SessionRow | None:
    return one(
        SessionRow,
        db.execute(
            text(f"SELECT {_SESSION_COLUMNS} {_SESSION_FROM} WHERE s.id = :id{' FOR UPDATE OF s' if lock else ''}"),
            {"id": session_id},
        ).first(),
    )


# The meter write of an accounting update or heartbeat, in one statement: the session's new counters, the
# ledger rows and the balance move together or not at all. The WHERE clause is a compare-and-set on the
# counters the update was computed from, so it needs no row lock: if anything moved the session meanwhile
# (another packet, the NetFlow importer), nothing is written and the caller recomputes under a lock.
# `durable` = 'off' lets an Interim-Update's commit return before the WAL reaches disk (it restates
# cumulative counters: losing it loses no money); Start/Stop and everything else stay 'on'.
_APPLY_METER = Prepared(
    "hs_apply_meter",
    f"""
    WITH durability AS (SELECT set_config('synchronous_commit', :durable, true) AS mode),
    moved_session AS (
        UPDATE sessions s
        SET seconds = :seconds, input_octets = :input_octets, output_octets = :output_octets,
            time_cost_num = :time_cost_num, traffic_cost_num = :traffic_cost_num, charged = :charged,
            last_seen_at = GREATEST(s.last_seen_at, :now),
            last_heartbeat_at = GREATEST(s.last_heartbeat_at, :heartbeat_at),
            status = coalesce(:close_status, s.status), stopped_at = coalesce(:stopped_at, s.stopped_at),
            terminate_cause = coalesce(:terminate_cause, s.terminate_cause),
            reported_seconds = CASE WHEN :set_positions THEN :reported_seconds ELSE s.reported_seconds END,
            reported_input_octets =
                CASE WHEN :set_positions THEN :reported_input_octets ELSE s.reported_input_octets END,
            reported_output_octets =
                CASE WHEN :set_positions THEN :reported_output_octets ELSE s.reported_output_octets END,
            counters_at = CASE WHEN :set_positions THEN GREATEST(s.counters_at, :counters_at) ELSE s.counters_at END
        FROM durability
        WHERE s.id = :session_id AND s.status = :old_status AND s.seconds = :old_seconds
          AND s.input_octets = :old_input_octets AND s.output_octets = :old_output_octets
          AND s.traffic_cost_num = :old_traffic_cost_num AND s.charged = :old_charged
          AND (NOT :set_positions OR (s.reported_seconds IS NOT DISTINCT FROM :old_reported_seconds
               AND s.reported_input_octets IS NOT DISTINCT FROM :old_reported_input_octets
               AND s.reported_output_octets IS NOT DISTINCT FROM :old_reported_output_octets))
        RETURNING s.id, s.account_id, s.card_id
    ), entry AS (
        INSERT INTO ledger (account_id, amount, cause, idempotency_key, card_id, session_id, seconds, bytes,
                            created_at)
        SELECT m.account_id, -e.amount, e.cause, e.key, m.card_id, m.id, e.seconds, e.bytes, :now
        FROM moved_session m
        CROSS JOIN (VALUES (CAST(:time_debit AS bigint), 'time', CAST(:time_key AS text),
                            CAST(:debit_seconds AS bigint), CAST(NULL AS bigint)),
                           (CAST(:traffic_debit AS bigint), 'traffic', CAST(:traffic_key AS text),
                            CAST(NULL AS bigint), CAST(:debit_bytes AS bigint)))
            AS e(amount, cause, key, seconds, bytes)
        WHERE e.amount <> 0
{POSTED_ENTRIES_MOVE_BALANCES}
    SELECT (SELECT count(*) FROM moved_session) AS written,
           coalesce((SELECT balance FROM moved_balance),
                    (SELECT a.balance FROM accounts a JOIN moved_session m ON a.id = m.account_id)) AS balance
    """,
)


@dataclass(frozen=True)
class CounterPositions:
    """Where the NAS's counters stand when that differs from what was billed (None: the billed value)."""

    seconds: int | None = None
    input_octets: int | None = None
    output_octets: int | None = None
    bytes_at: datetime | None = None  # when the billed byte counters stand (None: as they were)


@dataclass(frozen=True)
class MeterWrite:
    """New cumulative counters and rating state of a session, and the debits they cause."""

    seconds: int
    input_octets: int
    output_octets: int
    time_cost_num: int
    traffic_cost_num: int
    charged: int
    time_debit: int
    time_key: str
    debit_seconds: int
    traffic_debit: int
    traffic_key: str
    debit_bytes: int

    @property
    def debited(self) -> int:
        """What the write takes from the balance (minor units)."""
        return self.time_debit + self.traffic_debit


def apply_meter(
    db: Executor,
    row: SessionRow | SessionView,
    write: MeterWrite,
    now: datetime,
    *,
    durable: bool = True,
    heartbeat_at: datetime | None = None,
    stop: tuple[datetime, str] | None = None,
    positions: CounterPositions | None = None,
) -> int | None:
    """Write a meter update computed from `row`: the account's balance after it, or None when the session
    changed since it was read. With `positions` (an accounting packet's counters), the NAS's counter
    positions and the time of the byte counters (`counters_at`) are written too."""
    moved = positions or CounterPositions()
    result = _APPLY_METER.first_row(
        db,
        {
            **write.__dict__,
            "session_id": row.id,
            "old_status": row.status,
            "old_seconds": row.seconds,
            "old_input_octets": row.input_octets,
            "old_output_octets": row.output_octets,
            "old_traffic_cost_num": row.traffic_cost_num,
            "old_charged": row.charged,
            "durable": "on" if durable else "off",
            "now": now,
            "heartbeat_at": heartbeat_at,
            "close_status": "closed" if stop else None,
            "stopped_at": stop[0] if stop else None,
            "terminate_cause": stop[1] if stop else None,
            "set_positions": positions is not None,
            "reported_seconds": moved.seconds,
            "reported_input_octets": moved.input_octets,
            "reported_output_octets": moved.output_octets,
            "counters_at": moved.bytes_at,
            "old_reported_seconds": getattr(row, "reported_seconds", None),
            "old_reported_input_octets": getattr(row, "reported_input_octets", None),
            "old_reported_output_octets": getattr(row, "reported_output_octets", None),
        },
    )
    assert result is not None  # the statement always returns its one row
    return int(result["balance"]) if result["written"] else None


# `apply_meter` for many accounting packets of distinct sessions in one statement (the accounting importer's
# batches): each row guarded by the counters it was computed from, as there. Sessions left out of the result
# had changed since they were read: nothing was written for them.
_APPLY_METERS = f"""
    WITH m AS (
        SELECT * FROM unnest(
            CAST(:session_id AS bigint[]), CAST(:old_status AS text[]), CAST(:old_seconds AS bigint[]),
            CAST(:old_input_octets AS bigint[]), CAST(:old_output_octets AS bigint[]),
            CAST(:old_traffic_cost_num AS bigint[]), CAST(:old_charged AS bigint[]),
            CAST(:old_reported_seconds AS bigint[]), CAST(:old_reported_input_octets AS bigint[]),
            CAST(:old_reported_output_octets AS bigint[]), CAST(:seconds AS bigint[]),
            CAST(:input_octets AS bigint[]), CAST(:output_octets AS bigint[]), CAST(:time_cost_num AS bigint[]),
            CAST(:traffic_cost_num AS bigint[]), CAST(:charged AS bigint[]), CAST(:time_debit AS bigint[]),
            CAST(:time_key AS text[]), CAST(:debit_seconds AS bigint[]), CAST(:traffic_debit AS bigint[]),
            CAST(:traffic_key AS text[]), CAST(:debit_bytes AS bigint[]), CAST(:at AS timestamptz[]),
            CAST(:close_status AS text[]), CAST(:stopped_at AS timestamptz[]), CAST(:terminate_cause AS text[]),
            CAST(:reported_seconds AS bigint[]), CAST(:reported_input_octets AS bigint[]),
            CAST(:reported_output_octets AS bigint[]), CAST(:counters_at AS timestamptz[])
        ) AS m(session_id, old_status, old_seconds, old_input_octets, old_output_octets, old_traffic_cost_num,
               old_charged, old_reported_seconds, old_reported_input_octets, old_reported_output_octets, seconds,
               input_octets, output_octets, time_cost_num, traffic_cost_num, charged, time_debit, time_key,
               debit_seconds, traffic_debit, traffic_key, debit_bytes, at, close_status, stopped_at,
               terminate_cause, reported_seconds, reported_input_octets, reported_output_octets, counters_at)
    ), moved_session AS (
        UPDATE sessions s
        SET seconds = m.seconds, input_octets = m.input_octets, output_octets = m.output_octets,
            time_cost_num = m.time_cost_num, traffic_cost_num = m.traffic_cost_num, charged = m.charged,
            last_seen_at = GREATEST(s.last_seen_at, m.at),
            status = coalesce(m.close_status, s.status), stopped_at = coalesce(m.stopped_at, s.stopped_at),
            terminate_cause = coalesce(m.terminate_cause, s.terminate_cause),
            reported_seconds = m.reported_seconds, reported_input_octets = m.reported_input_octets,
            reported_output_octets = m.reported_output_octets, counters_at = GREATEST(s.counters_at, m.counters_at)
        FROM m
        WHERE s.id = m.session_id AND s.status = m.old_status AND s.seconds = m.old_seconds
          AND s.input_octets = m.old_input_octets AND s.output_octets = m.old_output_octets
          AND s.traffic_cost_num = m.old_traffic_cost_num AND s.charged = m.old_charged
          AND s.reported_seconds IS NOT DISTINCT FROM m.old_reported_seconds
          AND s.reported_input_octets IS NOT DISTINCT FROM m.old_reported_input_octets
          AND s.reported_output_octets IS NOT DISTINCT FROM m.old_reported_output_octets
        RETURNING s.id, s.account_id, s.card_id
    ), entry AS (
        INSERT INTO ledger (account_id, amount, cause, idempotency_key, card_id, session_id, seconds, bytes,
                            created_at)
        SELECT ms.account_id, -e.amount, e.cause, e.key, ms.card_id, ms.id, e.seconds, e.bytes, m.at
        FROM moved_session ms JOIN m ON m.session_id = ms.id
        CROSS JOIN LATERAL (VALUES (m.time_debit, 'time', m.time_key, m.debit_seconds, CAST(NULL AS bigint)),
                                   (m.traffic_debit, 'traffic', m.traffic_key, CAST(NULL AS bigint), m.debit_bytes))
            AS e(amount, cause, key, seconds, bytes)
        WHERE e.amount <> 0
{POSTED_ENTRIES_MOVE_BALANCES}
    SELECT id FROM moved_session
"""


@dataclass(frozen=True)
class MeterUpdate:
    """One accounting packet's meter write on a session read as `row` (`apply_meter`'s arguments)."""

    row: SessionRow
    write: MeterWrite
    now: datetime
    stop: tuple[datetime, str] | None
    positions: CounterPositions


def apply_meters(db: Session, updates: list[MeterUpdate], now: datetime) -> set[int]:
    """`apply_meter` for many packets of distinct sessions, in one statement; the ids of the sessions written
    (one missing had changed since its row was read: nothing was written for it)."""
    columns: dict[str, list[object]] = {name: [] for name in _METERS_COLUMNS}
    for update in updates:
        row, write, stop, moved = update.row, update.write, update.stop, update.positions
        values = (
            row.id, row.status, row.seconds, row.input_octets, row.output_octets, row.traffic_cost_num, row.charged,
            row.reported_seconds, row.reported_input_octets, row.reported_output_octets, write.seconds,
            write.input_octets, write.output_octets, write.time_cost_num, write.traffic_cost_num, write.charged,
            write.time_debit, write.time_key, write.debit_seconds, write.traffic_debit, write.traffic_key,
            write.debit_bytes, update.now, "closed" if stop else None, stop[0] if stop else None,
            stop[1] if stop else None, moved.seconds, moved.input_octets, moved.output_octets, moved.bytes_at,
        )  # fmt: skip
        for name, value in zip(_METERS_COLUMNS, values, strict=True):
            columns[name].append(value)
    arrays = {name: array_literal(values) for name, values in columns.items()}
    return set(db.execute(text(_APPLY_METERS), {**arrays, "now": now}).scalars())


_METERS_COLUMNS = (  # apply_meters' array parameters, in the order it lists a packet's values
    "session_id", "old_status", "old_seconds", "old_input_octets", "old_output_octets", "old_traffic_cost_num",
    "old_charged", "old_reported_seconds", "old_reported_input_octets", "old_reported_output_octets", "seconds",
    "input_octets", "output_octets", "time_cost_num", "traffic_cost_num", "charged", "time_debit", "time_key",
    "debit_seconds", "traffic_debit", "traffic_key", "debit_bytes", "at", "close_status", "stopped_at",
    "terminate_cause", "reported_seconds", "reported_input_octets", "reported_output_octets", "counters_at",
)  # fmt: skip


# Accounting-Starts of logins waiting for them, opened together (the accounting importer's batches, a Start in
# the hook): first use of a card opens its account with the face value loaded through the ledger (as
# cards.activate does), and each session opens as open_session sets it. Guarded: a session no longer pending,
# whose NAS session id another live session holds, or whose card is no longer in use on the account given
# (the hook reads it without locking the card) is left out of the result. The holders are looked up once per
# statement (`held`): as a correlated NOT EXISTS, statistics taken while few sessions were live (after a mass
# close, before autovacuum's next analyse) planned it as a scan of every live session per Start — ~5 ms a Start
# at 20,000 live sessions, the importer's lag stall (docs/radius.md). They are sought by NAS and NAS session id,
# the live id index's two keys: by the id alone that index was read whole, once per statement (a batch's, or
# each Start the hook opens), a cost growing with the live sessions.
_OPEN_SESSIONS = """
    WITH m AS (
        SELECT m0.*, CASE WHEN m0.account_id IS NULL THEN nextval(pg_get_serial_sequence('accounts', 'id')) END
                     AS new_account
        FROM unnest(
            CAST(:session_id AS bigint[]), CAST(:card_id AS bigint[]), CAST(:card_number AS text[]),
            CAST(:face_value AS bigint[]), CAST(:account_id AS bigint[]), CAST(:status AS text[]),
            CAST(:acct_session_id AS text[]), CAST(:username AS text[]), CAST(:framed_ip AS inet[]),
            CAST(:calling_station_id AS text[]), CAST(:started_at AS timestamptz[]),
            CAST(:last_seen_at AS timestamptz[]), CAST(:at AS timestamptz[])
        ) AS m0(session_id, card_id, card_number, face_value, account_id, status, acct_session_id, username,
                framed_ip, calling_station_id, started_at, last_seen_at, at)
    ), held AS MATERIALIZED (
        SELECT o.id, o.nas_id, o.acct_session_id
        FROM m JOIN sessions p ON p.id = m.session_id
        JOIN sessions o ON o.nas_id = p.nas_id AND o.acct_session_id = m.acct_session_id
        WHERE o.status <> 'closed'
    ), new_account AS (
        INSERT INTO accounts (id, balance, created_at, updated_at)
        SELECT new_account, face_value, at, at FROM m WHERE new_account IS NOT NULL
    ), loaded AS (
        INSERT INTO ledger (account_id, amount, cause, idempotency_key, card_id, note, created_at)
        SELECT new_account, face_value, 'card_load', 'card_load:' || card_id, card_id,
               'card ' || card_number || ' activated', at
        FROM m WHERE new_account IS NOT NULL
    ), activated AS (
        UPDATE cards c SET status = 'active', account_id = m.new_account, activated_at = m.at
        FROM m WHERE c.id = m.card_id AND m.new_account IS NOT NULL
    ), opened AS (
        UPDATE sessions s
        SET status = m.status, account_id = coalesce(m.account_id, m.new_account), acct_session_id = m.acct_session_id,
            username = m.username, framed_ip = m.framed_ip, calling_station_id = m.calling_station_id,
            started_at = m.started_at, last_seen_at = m.last_seen_at
        FROM m WHERE s.id = m.session_id AND s.status = 'pending'
          AND (m.account_id IS NULL OR EXISTS (SELECT 1 FROM cards c WHERE c.id = m.card_id AND c.status = 'active'
                                               AND c.account_id = m.account_id))
          AND NOT EXISTS (SELECT 1 FROM held o WHERE o.nas_id = s.nas_id AND o.acct_session_id = m.acct_session_id
                          AND o.id <> s.id)  -- the per-packet rules settle who holds it
        RETURNING s.id
    )
    SELECT id FROM opened
"""


@dataclass(frozen=True)
class SessionOpening:
    """A login's session opened by its Start: `opening` as open_session takes it, on the card's account (None:
    first use, the account is opened with the card's face value)."""

    session_id: int
    card_id: int
    card_number: str
    face_value: int
    account_id: int | None
    opening: dict[str, object]
    at: datetime


_OPENING_COLUMNS = (
    "status",
    "acct_session_id",
    "username",
    "framed_ip",
    "calling_station_id",
    "started_at",
    "last_seen_at",
)


def open_sessions(db: Session, openings: list[SessionOpening]) -> set[int]:
    """Open many logins' sessions (activating first-used cards) in one statement; the ids of those opened."""
    columns: dict[str, list[object]] = {
        "session_id": [o.session_id for o in openings],
        "card_id": [o.card_id for o in openings],
        "card_number": [o.card_number for o in openings],
        "face_value": [o.face_value for o in openings],
        "account_id": [o.account_id for o in openings],
        "at": [o.at for o in openings],
    }
    for name in _OPENING_COLUMNS:
        columns[name] = [o.opening[name] for o in openings]
    arrays = {name: array_literal(values) for name, values in columns.items()}
    return set(db.execute(text(_OPEN_SESSIONS), arrays).scalars())


_BY_TOKENS = f"SELECT {_SESSION_COLUMNS} {_SESSION_FROM} WHERE s.auth_token = ANY (CAST(:tokens AS text[]))"


def sessions_by_tokens(db: Session, tokens: list[str]) -> dict[str, SessionRow]:
    """`session_by_token` for many tokens in one query (a token not found is left out)."""
    result = db.execute(text(_BY_TOKENS), {"tokens": array_literal(tokens)})
    # by position, in the order _SESSION_COLUMNS lists them (checked): a batch reads thousands of rows
    assert tuple(result.keys()) == _SESSION_FIELDS, "_SESSION_COLUMNS and SessionRow disagree"
    return {row.auth_token: SessionRow(*row) for row in result}


_SESSION_FIELDS = tuple(field.name for field in fields(SessionRow))


_POST_HEARTBEATS = Prepared(
    "hs_post_heartbeats",
    f"""
    WITH durability AS (SELECT set_config('synchronous_commit', 'off', true) AS mode),
    beat AS (
        SELECT * FROM unnest(
            CAST(:session_id AS bigint[]), CAST(:old_status AS text[]), CAST(:old_seconds AS bigint[]),
            CAST(:old_input_octets AS bigint[]), CAST(:old_output_octets AS bigint[]),
            CAST(:old_traffic_cost_num AS bigint[]), CAST(:old_charged AS bigint[]), CAST(:seconds AS bigint[]),
            CAST(:time_cost_num AS bigint[]), CAST(:charged AS bigint[]), CAST(:time_debit AS bigint[]),
            CAST(:time_key AS text[]), CAST(:debit_seconds AS bigint[]), CAST(:heartbeat_at AS timestamptz[])
        ) AS b(session_id, old_status, old_seconds, old_input_octets, old_output_octets, old_traffic_cost_num,
               old_charged, seconds, time_cost_num, charged, time_debit, time_key, debit_seconds, heartbeat_at)
    ), moved_session AS (
        UPDATE sessions s
        SET seconds = b.seconds, time_cost_num = b.time_cost_num, charged = b.charged,
            last_seen_at = GREATEST(s.last_seen_at, b.heartbeat_at),
            last_heartbeat_at = GREATEST(s.last_heartbeat_at, b.heartbeat_at)
        FROM beat b, durability
        WHERE s.id = b.session_id AND s.status = b.old_status AND s.seconds = b.old_seconds
          AND s.input_octets = b.old_input_octets AND s.output_octets = b.old_output_octets
          AND s.traffic_cost_num = b.old_traffic_cost_num AND s.charged = b.old_charged
        RETURNING s.id, s.account_id, s.card_id
    ), entry AS (
        INSERT INTO ledger (account_id, amount, cause, idempotency_key, card_id, session_id, seconds, created_at)
        SELECT m.account_id, -b.time_debit, 'time', b.time_key, m.card_id, m.id, b.debit_seconds, b.heartbeat_at
        FROM moved_session m JOIN beat b ON b.session_id = m.id
        WHERE b.time_debit <> 0
{POSTED_ENTRIES_MOVE_BALANCES}
    SELECT 'session' AS kind, m.id AS session_id, m.account_id, NULL AS balance FROM moved_session m
    UNION ALL SELECT 'debited', NULL, mb.id, mb.balance FROM moved_balance mb
    UNION ALL SELECT 'as_was', NULL, a.id, a.balance FROM accounts a
              WHERE a.id = ANY (ARRAY(SELECT account_id FROM moved_session))
    """,
)  # (three lists joined by the caller: a join of CTEs here is planned as a nested loop, quadratic)


_HEARTBEAT_COLUMNS = (  # the statement's array parameters, in the order post_heartbeats lists a row's values
    "session_id", "old_status", "old_seconds", "old_input_octets", "old_output_octets", "old_traffic_cost_num",
    "old_charged", "seconds", "time_cost_num", "charged", "time_debit", "time_key", "debit_seconds", "heartbeat_at",
)  # fmt: skip
assert set(_HEARTBEAT_COLUMNS) == set(_POST_HEARTBEATS.parameters) - {"now"}


@dataclass(frozen=True)
class HeartbeatPost:
    """A standalone session's time meter advanced to a heartbeat, guarded by the state it was computed from."""

    row: SessionView
    write: MeterWrite
    heartbeat_at: datetime


def post_heartbeats(db: Executor, beats: list[HeartbeatPost], now: datetime) -> dict[int, int]:
    """Post many heartbeats' time meters and debits in one statement (and one commit, not waited for).

    Each row is guarded like `apply_meter`'s; returns the balance after it for each session written (a
    session missing from the result had changed since its view was read: nothing was written for it).
    Heartbeats bill time only: a NAS's traffic counters never come with them.
    """
    rows = []
    for beat in beats:
        row, write = beat.row, beat.write
        traffic_moves = write.traffic_cost_num != row.traffic_cost_num or write.traffic_debit
        if traffic_moves or (write.input_octets, write.output_octets) != (row.input_octets, row.output_octets):
            raise ValueError(f"session {row.id}: a heartbeat moves no traffic counters (write it with apply_meter)")
        rows.append((
            row.id, row.status, row.seconds, row.input_octets, row.output_octets, row.traffic_cost_num, row.charged,
            write.seconds, write.time_cost_num, write.charged, write.time_debit, write.time_key, write.debit_seconds,
            beat.heartbeat_at,
        ))  # fmt: skip
    columns = zip(*rows, strict=True) if rows else [()] * len(_HEARTBEAT_COLUMNS)
    arrays = {name: array_literal(column) for name, column in zip(_HEARTBEAT_COLUMNS, columns, strict=True)}
    account_of: dict[int, int] = {}
    balances: dict[str, dict[int, int]] = {"debited": {}, "as_was": {}}
    for kind, session_id, account_id, balance in _POST_HEARTBEATS(db, {**arrays, "now": now}):
        if kind == "session":
            account_of[session_id] = account_id
        else:
            balances[kind][account_id] = balance
    debited, as_was = balances["debited"], balances["as_was"]
    return {sid: debited.get(account, as_was[account]) for sid, account in account_of.items()}


def update_session(db: Session, session_id: int, **values: object) -> None:
    db.execute(
        text(f"UPDATE sessions SET {_assignments(values)} WHERE id = :session_id"), {**values, "session_id": session_id}
    )


def open_session(db: Session, session_id: int, **values: object) -> SessionRow:
    """Set a session's columns and return it as `find_session` reads it, in one statement."""
    row = db.execute(
        text(
            f"UPDATE sessions s SET {_assignments(values)} FROM hotspots h, cards c "
            f"WHERE s.id = :session_id AND h.id = s.hotspot_id AND c.id = s.card_id RETURNING {_SESSION_COLUMNS}"
        ),
        {**values, "session_id": session_id},
    ).one()
    return SessionRow(**row._mapping)


def _assignments(values: dict[str, object]) -> str:
    return ", ".join(f"{name} = :{name}" for name in values)


@dataclass(frozen=True, slots=True)
class AcctIdHolder:
    id: int
    started_at: datetime
    last_seen_at: datetime


def live_session_with_acct_id(db: Session, nas_id: int, acct_session_id: str) -> AcctIdHolder | None:
    """The live session that holds a NAS session id now (a NAS has one live session per id), locked."""
    row = db.execute(
        text(
            "SELECT id, started_at, last_seen_at FROM sessions WHERE nas_id = :nas_id "
            "AND acct_session_id = :acct_session_id AND status <> 'closed' FOR UPDATE"
        ),
        {"nas_id": nas_id, "acct_session_id": acct_session_id},
    ).first()
    return one(AcctIdHolder, row)


def nas_restarted(db: Session, nas_id: int, at: datetime) -> None:
    """Record an Accounting-On/Off (a late copy of an older one changes nothing)."""
    db.execute(text("UPDATE nas SET rebooted_at = GREATEST(rebooted_at, :at) WHERE id = :id"), {"id": nas_id, "at": at})


_PENDING_LOGIN = f"""
    SELECT {_SESSION_COLUMNS} {_SESSION_FROM}
    WHERE s.nas_id = :nas_id AND s.status = 'pending' AND s.acct_session_id IS NULL
      AND (s.username = :username OR c.number = :card_number) AND s.started_at <= :sent
    ORDER BY s.started_at DESC, s.id DESC LIMIT 1 FOR UPDATE OF s
"""


def pending_login(db: Session, nas_id: int, user: PacketUser, sent: datetime) -> SessionRow | None:
    """The user's latest login at this NAS still waiting for its Start, made before `sent`, locked."""
    row = db.execute(
        text(_PENDING_LOGIN),
        {"nas_id": nas_id, "username": user.username, "card_number": user.card_number, "sent": sent},
    ).first()
    return one(SessionRow, row)


#: Sessions closed per statement by an Accounting-On: few statements, each far below statement_timeout_ms
#: (~0.1 s for 1,000 on a busy 2-core machine, bench/nas_close_cost.py) whatever the NAS's size.
NAS_CLOSE_CHUNK = 1000


def close_sessions_of_nas(db: Session, nas_id: int, *, started_before: datetime, cause: str) -> int:
    """Close the NAS's sessions that a reboot at `started_before` ends, at that time and their last counters;
    returns how many. Not those begun after it: a late copy of its Accounting-On must not end them. The rows
    are locked first, in id order, as every writer of several sessions locks them; each close settles its
    usage in the ledger (sessions_settle_usage, sql/017) as a close of one session does.

    A statement per NAS_CLOSE_CHUNK sessions rather than one per session: the direct path runs it inside
    radiusd's serialized python3 hook, where 5,000 single-row updates kept every login waiting ~1.8 s
    (bench/reboot_storm.py); not one for all, which a NAS with tens of thousands of sessions on a busy
    database could make outlast statement_timeout_ms, failing the Accounting-On every time it is sent."""
    ids = db.execute(
        text(
            "SELECT id FROM sessions WHERE nas_id = :nas_id AND status <> 'closed' AND started_at < :before "
            "ORDER BY id FOR UPDATE"
        ),
        {"nas_id": nas_id, "before": started_before},
    ).scalars()
    ended = list(ids)
    for first in range(0, len(ended), NAS_CLOSE_CHUNK):
        db.execute(
            text(
                "UPDATE sessions SET status = 'closed', stopped_at = :before, terminate_cause = :cause "
                "WHERE id = ANY(:ids)"
            ),
            {"ids": ended[first : first + NAS_CLOSE_CHUNK], "before": started_before, "cause": cause},
        )
    return len(ended)


@dataclass(frozen=True, slots=True)
class PacketNas(NasRecord):
    """A NAS that sends accounting, with what its hotspot bounds a session by."""

    timezone: str
    max_session_seconds: int


_NAS_COLUMNS = ", ".join(f"n.{field.name}" for field in fields(NasRecord))


def nas_by_ip(db: Executor, ip: str) -> PacketNas | None:
    row = db.execute(
        text(
            f"SELECT {_NAS_COLUMNS}, h.timezone, h.max_session_seconds FROM nas n "
            "JOIN hotspots h ON h.id = n.hotspot_id WHERE n.ip_address = CAST(:ip AS inet)"
        ),
        {"ip": ip},
    ).first()
    return one(PacketNas, row)


def stale_sessions(db: Session, now: datetime, pending_ttl_s: int, limit: int = 1000) -> list[int]:
    """RADIUS sessions that no longer count as live: to be closed at their last counters.

    Stale standalone (portal) sessions are left to the worker's enforcement, which closes their gate too.
    """
    rows = db.execute(
        text(
            f"""SELECT s.id FROM sessions s JOIN hotspots h ON h.id = s.hotspot_id
                WHERE s.status <> 'closed' AND s.source = 'radius' AND NOT ({LIVE_SESSION})
                ORDER BY s.id LIMIT :limit FOR UPDATE OF s SKIP LOCKED"""
        ),
        {"now": now, "pending_ttl": pending_ttl_s, "limit": limit},
    )
    return [r.id for r in rows]
