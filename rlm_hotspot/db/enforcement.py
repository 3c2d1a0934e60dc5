"""Queries of the worker: which live sessions must be cut, and the `disconnects` queue.

Set-based: one statement finds every open session that must end and why, one cancels queue rows whose
session no longer needs cutting, one enqueues the rest (the unique partial index keeps one pending row
per session, so enqueueing twice does nothing), one claims the rows whose next attempt is due.

The guest's own requests sit in the same queue: `logout` (a Disconnect-Request) and `topup` (a
CoA-Request with the new limits), and so do an administrator's (`admin`: `hotspotctl sessions end`). No
rule produces them, so they are finished only once sent or once
their session has ended.
"""

from __future__ import annotations

import select
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg2
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from rlm_hotspot.core.heartbeat import CLOSED_PAGE_SLACK_S, PageState, Silence
from rlm_hotspot.db.sessions import LIVE_SESSION

_LAST_SIGN = "COALESCE(s.last_heartbeat_at, s.started_at)"
_AFTER = "{at} + make_interval(secs => {seconds}) < :now"

# The heartbeat rule (rlm_hotspot.core.heartbeat.heartbeat_deadline): under 'on' and 'grace', the reason a
# session silent for too long has ended, else NULL. A page that said it was closed ends CLOSED_PAGE_SLACK_S
# later unless a sign of life came after it; a hidden page gets the hotspot's hidden_grace; any other
# page, or none, heartbeat_timeout since the last sign of life (or since login).
_SILENCE = f"""CASE
    WHEN h.heartbeat NOT IN ('on', 'grace') THEN NULL
    WHEN s.page_state = '{PageState.CLOSED}' AND s.page_state_at >= {_LAST_SIGN}
        THEN CASE WHEN {_AFTER.format(at="s.page_state_at", seconds=CLOSED_PAGE_SLACK_S)} THEN '{Silence.CLOSED}' END
    WHEN s.page_state = '{PageState.HIDDEN}'
        THEN CASE WHEN {_AFTER.format(at=_LAST_SIGN, seconds="GREATEST(h.heartbeat_timeout, h.hidden_grace)")}
                  THEN '{Silence.HIDDEN}' END
    WHEN {_AFTER.format(at=_LAST_SIGN, seconds="h.heartbeat_timeout")} THEN '{Silence.STOPPED}'
END"""

# Why an open session must end, first match wins. The deadline is the admin_cards one (card_deadlines
# view, capped by the batch's hard expiry), which for an activated card is the core's effective deadline.
# A standalone session that went stale has no NAS to say it ended, so it is cut like any other (its gate
# must close); stale RADIUS sessions are closed by close_stale_sessions instead.
_MUST_CUT = f"""
    SELECT s.id AS session_id,
           CASE WHEN c.blocked THEN 'blocked'
                WHEN LEAST(d.deadline, b.expires_at) <= :now THEN 'expired'
                WHEN a.balance <= 0 THEN 'exhausted'
                WHEN silence.reason IS NOT NULL THEN silence.reason
                ELSE 'stale'
           END AS reason
    FROM sessions s
    JOIN cards c ON c.id = s.card_id
    JOIN card_batches b ON b.id = c.batch_id
    JOIN card_deadlines d ON d.card_id = c.id
    JOIN hotspots h ON h.id = s.hotspot_id
    LEFT JOIN accounts a ON a.id = s.account_id
    CROSS JOIN LATERAL (SELECT {_SILENCE} AS reason) silence
    WHERE s.status = 'open'
      AND (c.blocked
           OR LEAST(d.deadline, b.expires_at) <= :now
           OR a.balance <= 0
           OR silence.reason IS NOT NULL
           OR (s.source = 'portal' AND NOT ({LIVE_SESSION})))
"""


ADMIN_REASON = "admin"
# Requests no rule produces (the guest's, an administrator's): finished only once sent or once their
# session has ended.
REQUESTED = ("logout", "topup", ADMIN_REASON)
_NEEDLESS = f"""CASE WHEN d.reason IN {REQUESTED}
                     THEN EXISTS (SELECT 1 FROM sessions s WHERE s.id = d.session_id AND s.status = 'closed')
                     ELSE d.session_id NOT IN (SELECT session_id FROM ({_MUST_CUT}) m) END"""


@dataclass(frozen=True)
class QueuedCut:
    session_id: int
    reason: str


def cancel_needless(db: Session, now: datetime, pending_ttl_s: int) -> list[QueuedCut]:
    """Finish pending rows whose session ended by itself or no longer must be cut (e.g. topped up)."""
    rows = db.execute(
        text(
            f"""UPDATE disconnects d SET done_at = :now
                WHERE d.done_at IS NULL AND {_NEEDLESS}
                RETURNING d.session_id, d.reason"""
        ),
        {"now": now, "pending_ttl": pending_ttl_s},
    )
    return [QueuedCut(r.session_id, r.reason) for r in rows]


def enqueue_cuts(db: Session, now: datetime, pending_ttl_s: int, ask_again_after_s: int) -> list[QueuedCut]:
    """Queue a Disconnect (or gate closing) for every session that must be cut and has none pending.

    A session whose last request was tried and finished less than `ask_again_after_s` ago is left
    alone: a NAS that timed out or refused is asked again later, not every cycle.
    """
    _one_at_a_time(db)
    rows = db.execute(
        text(
            f"""INSERT INTO disconnects (session_id, reason, requested_at)
                SELECT m.session_id, m.reason, :now FROM ({_MUST_CUT}) m
                WHERE NOT EXISTS (SELECT 1 FROM disconnects r
                                  WHERE r.session_id = m.session_id AND r.attempts > 0 AND r.reason <> 'topup'
                                    AND r.done_at > :now - make_interval(secs => :ask_again_after))
                ORDER BY m.session_id
                ON CONFLICT (session_id) WHERE done_at IS NULL DO NOTHING
                RETURNING session_id, reason"""
        ),
        {"now": now, "pending_ttl": pending_ttl_s, "ask_again_after": ask_again_after_s},
    )
    return [QueuedCut(r.session_id, r.reason) for r in rows]


def gates_billed_long_ago(db: Session, now: datetime, limit: int) -> list[str]:
    """Tokens of open standalone sessions of hotspots that require heartbeats whose online time was last
    billed more than half the heartbeat timeout ago (`seconds` is the online time billed so far, counted
    from `started_at`). Not under heartbeat 'off': there a session nobody hears of goes stale
    (`last_seen_at`, which billing moves), and is billed when it is cut."""
    rows = db.execute(
        text(
            """SELECT s.auth_token FROM sessions s JOIN hotspots h ON h.id = s.hotspot_id
               WHERE s.status = 'open' AND s.source = 'portal' AND h.heartbeat IN ('on', 'grace')
                 AND s.started_at + make_interval(secs => s.seconds + h.heartbeat_timeout / 2.0) < :now
               ORDER BY s.id LIMIT :limit"""
        ),
        {"now": now, "limit": limit},
    )
    return [r.auth_token for r in rows]


@dataclass(frozen=True)
class ClaimedCut:
    """A queue row claimed for one attempt, with everything needed to end its session."""

    disconnect_id: int
    session_id: int
    reason: str
    attempt: int  # 1 for the first attempt
    source: str  # 'radius' (ask the NAS) or 'portal' (close the gate)
    user_name: str  # as the NAS sent it at login (else the card number)
    acct_session_id: str | None
    framed_ip: str | None
    calling_station_id: str | None
    nas_name: str | None
    nas_ip: str | None
    nas_coa_port: int | None
    nas_secret: str | None
    nas_vendor: str | None
    token: str  # the session's auth token (a CoA reads its current limits by it)
    card_id: int
    hotspot_id: int
    tariff_id: int
    interim_interval: int
    idle_timeout: int | None


def claim_due(db: Session, now: datetime, retry_delays_s: list[int], limit: int) -> list[ClaimedCut]:
    """Count one more attempt on every pending row whose turn has come, and return them.

    The claim is committed before anything is sent, so a second worker (or a crash mid-send) can never
    make a row be tried more often than the back-off allows. After attempt n the next one waits
    retry_delays_s[n-1] seconds (the last delay repeats).
    """
    rows = db.execute(
        text(
            """WITH due AS (
                   SELECT id FROM disconnects
                   WHERE done_at IS NULL
                     AND (last_attempt_at IS NULL
                          OR last_attempt_at <= :now - make_interval(secs =>
                                 (CAST(:delays AS int[]))[LEAST(attempts, cardinality(CAST(:delays AS int[])))]))
                   ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED
               ), claimed AS (
                   UPDATE disconnects d SET attempts = d.attempts + 1, last_attempt_at = :now
                   FROM due WHERE d.id = due.id
                   RETURNING d.id, d.session_id, d.reason, d.attempts
               )
               SELECT claimed.id AS disconnect_id, claimed.session_id, claimed.reason, claimed.attempts AS attempt,
                      s.source, coalesce(s.username, c.number) AS user_name, s.acct_session_id,
                      host(s.framed_ip) AS framed_ip, s.calling_station_id, n.name AS nas_name,
                      host(n.ip_address) AS nas_ip, n.coa_port AS nas_coa_port, n.secret AS nas_secret,
                      n.vendor AS nas_vendor, s.auth_token AS token, s.card_id, s.hotspot_id, s.tariff_id,
                      h.interim_interval, h.idle_timeout
               FROM claimed
               JOIN sessions s ON s.id = claimed.session_id
               JOIN hotspots h ON h.id = s.hotspot_id
               JOIN cards c ON c.id = s.card_id
               LEFT JOIN nas n ON n.id = s.nas_id
               ORDER BY claimed.id"""
        ),
        {"now": now, "delays": retry_delays_s, "limit": limit},
    )
    return [ClaimedCut(**r._mapping) for r in rows]


WAKE_CHANNEL = "hotspot_cuts"  # NOTIFY on commit: a cut that must not wait for the worker's next cycle


def wake_worker(db: Session) -> None:
    """Have the worker run a cycle as soon as this transaction commits (`WakeListener`)."""
    db.execute(text("SELECT pg_notify(:channel, '')"), {"channel": WAKE_CHANNEL})


class WakeListener:
    """The worker's wait between cycles, cut short by a NOTIFY on WAKE_CHANNEL (one LISTENing connection
    of its own, made again after a database outage; meanwhile the wait is a plain one)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._connection: Any = None

    def wait(self, seconds: float, stop: threading.Event) -> None:
        deadline = time.monotonic() + seconds
        try:
            listening = self._listening()
            while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
                if select.select([listening], [], [], min(left, 0.5))[0]:
                    listening.poll()
                    if listening.notifies:
                        listening.notifies.clear()
                        return
        except (SQLAlchemyError, OSError, psycopg2.Error):
            self.close()
            stop.wait(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        if self._connection is not None:
            self._connection.invalidate()
            self._connection = None

    def _listening(self) -> Any:
        if self._connection is None:
            self._connection = self._engine.raw_connection()
            listening = self._connection.driver_connection
            listening.autocommit = True  # a NOTIFY is delivered between transactions
            with listening.cursor() as cursor:
                cursor.execute(f"LISTEN {WAKE_CHANNEL}")
        return self._connection.driver_connection


# A request that outranks whatever is pending for the session (a Disconnect outranks a CoA): it takes the
# pending row's place and starts its attempts afresh.
_QUEUE_END = """INSERT INTO disconnects (session_id, reason, requested_at)
                SELECT id, :reason, :now FROM sessions WHERE {which} AND status <> 'closed'
                ON CONFLICT (session_id) WHERE done_at IS NULL
                DO UPDATE SET reason = EXCLUDED.reason, requested_at = EXCLUDED.requested_at, attempts = 0,
                              last_attempt_at = NULL, outcome = NULL
                RETURNING id"""


def queue_logout(db: Session, token: str, now: datetime) -> bool:
    """Ask the worker to end a NAS session the guest logged out of, at once (it is woken on commit); a
    pending request for the session becomes this one (a logout outranks a CoA). False: no open RADIUS
    session has this token."""
    row = db.execute(
        text(_QUEUE_END.format(which="auth_token = :token AND source = 'radius'")),
        {"token": token, "now": now, "reason": "logout"},
    ).first()
    if row is None:
        return False
    wake_worker(db)
    return True


def queue_admin_end(db: Session, session_id: int, now: datetime) -> bool:
    """Ask the worker to end a session an administrator ended, at once: a Disconnect-Request to its NAS,
    or its gate closed (reason `admin`: Acct-Terminate-Cause Admin-Reset). False: it is not live."""
    row = db.execute(
        text(_QUEUE_END.format(which="id = :id")), {"id": session_id, "now": now, "reason": ADMIN_REASON}
    ).first()
    if row is None:
        return False
    wake_worker(db)
    return True


_QUEUE_COA = """INSERT INTO disconnects (session_id, reason, requested_at)
                 SELECT id, 'topup', :now FROM sessions
                 WHERE {which} AND source = 'radius' AND status <> 'closed'
                 ON CONFLICT (session_id) WHERE done_at IS NULL DO NOTHING
                 RETURNING session_id"""


def queue_coa(db: Session, token: str, now: datetime) -> bool:
    """Ask the worker to tell a NAS session its new limits (after a top-up); a request already pending
    for the session stands (a Disconnect outranks it — and if the top-up makes it needless, cancelling it
    queues this CoA: `queue_coas`; a pending CoA will read the new balance anyway)."""
    row = db.execute(text(_QUEUE_COA.format(which="auth_token = :token")), {"token": token, "now": now}).first()
    return row is not None


def queue_coas(db: Session, session_ids: list[int], now: datetime) -> list[int]:
    """A CoA for each of these sessions still live at a NAS (none where a request is pending already)."""
    rows = db.execute(text(_QUEUE_COA.format(which="id = ANY (:ids)")), {"ids": session_ids, "now": now})
    return [r.session_id for r in rows]


_CUTS_LOCK = 0x68637574  # "hcut": queueing cuts and finishing attempts, one worker at a time


def _one_at_a_time(db: Session) -> None:
    """Serialize queueing cuts with finishing attempts (until the transaction ends), across workers.

    Without it, a worker queueing a cut while another finishes the session's last attempt reads that row
    as still pending, then the finished row no longer holds the one-pending index, and the session gets
    a second Disconnect at once. Taken before the statement, the queueing reads the finished row.
    """
    db.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CUTS_LOCK})


def record_outcome(
    db: Session, disconnect_id: int, outcome: str, *, error_cause: int | None = None, done_at: datetime | None
) -> None:
    """Store what the last attempt gave; `done_at` None keeps the row pending for another attempt."""
    _one_at_a_time(db)
    db.execute(
        text(
            "UPDATE disconnects SET outcome = :outcome, error_cause = :error_cause, done_at = :done_at WHERE id = :id"
        ),
        {"id": disconnect_id, "outcome": outcome, "error_cause": error_cause, "done_at": done_at},
    )


def close_at_last_seen(db: Session, session_id: int, reason: str) -> bool:
    """Close a session cut for `reason` at its last billed moment (no further debit); False if it was
    already closed."""
    return _close(db, session_id, reason, "last_seen_at", {})


def close_at(db: Session, session_id: int, reason: str, at: datetime) -> bool:
    """Close a session cut for `reason` at `at`, when it was cut (never before its last sign of life,
    whatever the clocks say); no further debit. False if it was already closed."""
    return _close(db, session_id, reason, "GREATEST(:at, last_seen_at)", {"at": at})


def _close(db: Session, session_id: int, reason: str, stopped_at: str, values: dict[str, object]) -> bool:
    """The terminate cause of a cut is the one sql/014's cut_terminate_cause gives its reason (the same the
    NAS's Accounting-Stop after a Disconnect is given)."""
    row = db.execute(
        text(
            f"""UPDATE sessions SET status = 'closed', stopped_at = {stopped_at},
                   terminate_cause = cut_terminate_cause(:reason)
               WHERE id = :id AND status <> 'closed' RETURNING id"""
        ),
        {"id": session_id, "reason": reason, **values},
    ).first()
    return row is not None
