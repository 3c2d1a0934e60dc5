"""Ending sessions that must end: the worker's rules, outside any RADIUS hook.

Each cycle: stale sessions are closed at their last counters; every open session that must be cut gets
one pending row in `disconnects` with its reason — `blocked` (card blocked), `expired` (the card's
effective deadline passed), `exhausted` (balance <= 0), `heartbeat` (hotspot heartbeat 'on' or 'grace'
and no heartbeat — page or, under 'grace', RFC 8908 poll — for longer than heartbeat_timeout since the
last one or since login), `stale` (a standalone session nobody has heard of for 2 x interim + grace) —
and rows whose session no longer needs it are finished. The worker then claims the rows that are due and acts on each:

* RADIUS session: an RFC 5176 Disconnect-Request to its NAS. ACK → recorded; the session is *not*
  closed here: the NAS's Accounting-Stop closes it with the final counters. NAK → recorded with its
  Error-Cause; a NAK 503 Session-Context-Not-Found means the NAS no longer has the session, so it is
  closed at its last counters whatever the reason (a later Interim/Stop for it would still be billed).
  No answer → retried after RETRY_DELAYS_S, given up as `timeout` after MAX_NAS_ATTEMPTS (the session
  then ends by its Session-Timeout, or as stale); a session still to be cut is asked again after
  ASK_AGAIN_AFTER_S.
* A guest who logged out on the portal of a RADIUS hotspot (`logout`, queued by
  rlm_hotspot.services.portal.end_at_nas) gets the same Disconnect-Request.
* A RADIUS session whose card was topped up on the portal (`topup`) gets a CoA-Request with the limits
  of an Access-Accept counted from the session's start (:func:`limits_for_nas`), outcomes as above — also
  when the top-up came while a Disconnect for exhaustion was pending (its NAS had not acknowledged it):
  cancelling that one queues the CoA. A
  NAS that refuses CoA (NAK, or never answers) keeps the old limits: when they run out it ends the
  session, and the guest's next login gets the new ones — no money is lost, billing follows accounting.
* Standalone (portal) session: the gate for the client's IP/MAC is closed, then the session is closed
  and its online time billed up to that moment, whatever the reason: the gate let traffic through until
  then (so NetFlow records of it that arrive within the import's grace window are still billed to the
  session too). (A stale RADIUS session, or one its NAS no longer knows, ends at its last counters
  instead: the NAS's counters are the meter there, and nothing was cut.)

Before all that, a standalone session whose gate is open while no heartbeat bills it (its page is hidden,
frozen or closed) has its online time billed up to now (`bill_open_gates`), so its balance — and the
`exhausted` rule — follow the time its gate is open.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from rlm_hotspot.db import enforcement as q
from rlm_hotspot.db.enforcement import ClaimedCut, QueuedCut
from rlm_hotspot.services.access import Grant, Policy
from rlm_hotspot.services.errors import NotFound
from rlm_hotspot.services.gate_time import bill_open_time
from rlm_hotspot.services.sessions import close_stale_sessions, session_view, status_of
from rlm_hotspot.services.tariff_cache import TariffCache

RETRY_DELAYS_S = [15, 60]  # wait after attempt 1, after attempt 2 and later
MAX_NAS_ATTEMPTS = 3
ASK_AGAIN_AFTER_S = 600
CLAIM_LIMIT = 500
SESSION_CONTEXT_NOT_FOUND = 503  # RFC 5176 Error-Cause

COA_REASON = "topup"


@dataclass(frozen=True)
class CutPlan:
    """What one planning step changed, for the worker's log."""

    stale_closed: int
    queued: list[QueuedCut]
    cancelled: list[QueuedCut]
    new_limits: list[int]  # sessions whose cut for exhaustion was cancelled: a CoA tells their NAS


def plan_cuts(db: Session, policy: Policy, now: datetime) -> CutPlan:
    """Close stale sessions, then bring the queue in line with the sessions that must be cut now.

    A session whose Disconnect for exhaustion is cancelled (a top-up while its NAS had not yet
    acknowledged it) gets a CoA with its new limits in its place: its NAS still counts down limits
    computed from the old balance.
    """
    stale = close_stale_sessions(db, policy, now)
    cancelled = q.cancel_needless(db, now, policy.pending_session_ttl_s)
    refilled = [cut.session_id for cut in cancelled if cut.reason == "exhausted"]
    new_limits = q.queue_coas(db, refilled, now) if refilled else []
    queued = q.enqueue_cuts(db, now, policy.pending_session_ttl_s, ASK_AGAIN_AFTER_S)
    return CutPlan(stale, queued, cancelled, new_limits)


def bill_open_gates(db: Session, tariffs: TariffCache, now: datetime, limit: int = CLAIM_LIMIT) -> int:
    """Bill up to now the online time of standalone sessions that no heartbeat billed for more than half
    the heartbeat timeout (a page beats every third of it): their gate is open, so the time is due, and a
    balance that reaches zero gets them cut. Returns how many were billed."""
    billed = 0
    for token in q.gates_billed_long_ago(db, now, limit):
        view = session_view(db, token, lock=True)
        if view.status == "open":
            bill_open_time(db, tariffs, view, now)
            billed += 1
    return billed


def claim_due_cuts(db: Session, now: datetime, limit: int = CLAIM_LIMIT) -> list[ClaimedCut]:
    """The queue rows to act on now, each with its attempt counted (commit before acting)."""
    return q.claim_due(db, now, RETRY_DELAYS_S, limit)


def limits_for_nas(db: Session, tariffs: TariffCache, cut: ClaimedCut, now: datetime) -> Grant | None:
    """What the NAS must enforce now that the balance changed: an Access-Accept's limits, but counted
    from the session's start as the NAS counts them (time and bytes used so far plus what the balance
    buys now). None: the session has ended."""
    try:
        view = session_view(db, cut.token)
    except NotFound:
        return None
    status = status_of(db, tariffs, view, now)
    if not status.open:
        return None
    spec = tariffs.get(db, view.tariff_id, now).spec
    capped = view.traffic_meter == "radius" and status.bytes_remaining is not None
    return Grant(
        card_id=cut.card_id,
        card_number=view.card_number,
        account_id=view.account_id,
        balance=status.balance,
        hotspot_id=cut.hotspot_id,
        nas_id=None,
        nas_vendor=cut.nas_vendor,
        tariff_id=cut.tariff_id,
        session_timeout=view.seconds + status.seconds_remaining,
        data_cap=view.input_octets + view.output_octets + (status.bytes_remaining or 0) if capped else None,
        deadline=status.deadline,
        interim_interval=cut.interim_interval,
        idle_timeout=cut.idle_timeout,
        rate_up_kbps=spec.rate_up_kbps,
        rate_down_kbps=spec.rate_down_kbps,
        pin=None,
    )


def record_ack(db: Session, cut: ClaimedCut, now: datetime) -> None:
    q.record_outcome(db, cut.disconnect_id, "ack", done_at=now)


def record_nak(db: Session, cut: ClaimedCut, error_cause: int | None, now: datetime) -> bool:
    """Record a NAK; returns True when the session was closed because the NAS does not know it."""
    q.record_outcome(db, cut.disconnect_id, "nak", error_cause=error_cause, done_at=now)
    if error_cause != SESSION_CONTEXT_NOT_FOUND:
        return False
    return q.close_at_last_seen(db, cut.session_id, cut.reason)


def record_no_answer(db: Session, cut: ClaimedCut, now: datetime) -> bool:
    """Record an unanswered attempt; returns True when it was the last one (outcome `timeout`)."""
    final = cut.attempt >= MAX_NAS_ATTEMPTS
    q.record_outcome(db, cut.disconnect_id, "timeout", done_at=now if final else None)
    return final


def record_no_nas(db: Session, cut: ClaimedCut, now: datetime) -> None:
    """A RADIUS session without a known NAS cannot be disconnected; it ends by timeout or as stale."""
    q.record_outcome(db, cut.disconnect_id, "no_nas", done_at=now)


def record_gate_closed(db: Session, tariffs: TariffCache, cut: ClaimedCut, now: datetime) -> None:
    """The standalone client's gate is closed: finish the row, bill the session's online time up to now
    and close it now, when it was cut (its late NetFlow records then fall in the grace window that
    counts from here)."""
    q.record_outcome(db, cut.disconnect_id, "gate_closed", done_at=now)
    view = session_view(db, cut.token, lock=True)
    if view.status == "open":
        bill_open_time(db, tariffs, view, now)
    q.close_at(db, cut.session_id, cut.reason, now)


def next_attempt_delay_s(cut: ClaimedCut) -> int:
    """How long the row waits after this attempt (for log lines)."""
    return RETRY_DELAYS_S[min(cut.attempt, len(RETRY_DELAYS_S)) - 1]
