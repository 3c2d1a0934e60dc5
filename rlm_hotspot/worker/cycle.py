"""One enforcement cycle: close stale sessions and queue the cuts (see rlm_hotspot.services.enforcement),
claim the due ones, then act outside any transaction — an RFC 5176 Disconnect-Request (or CoA-Request) to
the NAS of a RADIUS session (sent in parallel, each retransmitted 3 x 1 s), or closing the firewall gate of
a standalone session — and record each outcome in its own transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from rlm_hotspot.clock import utc_now
from rlm_hotspot.db.enforcement import ClaimedCut
from rlm_hotspot.metrics import WorkerMetrics
from rlm_hotspot.nas.coa import (
    NasAddress,
    NasAnswer,
    NoAnswer,
    SessionIdentity,
    error_cause_name,
    send_coa,
    send_disconnect,
)
from rlm_hotspot.radius.encode import accept_reply
from rlm_hotspot.services.access import Policy
from rlm_hotspot.services.enforcement import (
    COA_REASON,
    MAX_NAS_ATTEMPTS,
    CutPlan,
    bill_open_gates,
    claim_due_cuts,
    limits_for_nas,
    next_attempt_delay_s,
    plan_cuts,
    record_ack,
    record_gate_closed,
    record_nak,
    record_no_answer,
    record_no_nas,
)
from rlm_hotspot.services.quarantine import held_counts
from rlm_hotspot.services.tariff_cache import TariffCache

log = logging.getLogger("rlm_hotspot.worker")

PARALLEL_SENDS = 16


class GateCloser(Protocol):
    """Closes the firewall gate of a standalone client (a portal gate driver's `close`); raises on failure."""

    def __call__(self, ip: str, mac: str | None) -> None: ...


DisconnectSender = Callable[[NasAddress, SessionIdentity, datetime], NasAnswer]
CoaSender = Callable[[NasAddress, SessionIdentity, list[tuple[str, str]], datetime], NasAnswer]


@dataclass
class Worker:
    """One enforcement cycle at a time; everything external is injected (tests, the CLI)."""

    transaction: Callable[[], AbstractContextManager[Session]]
    policy: Policy
    close_gate: GateCloser
    send: DisconnectSender = send_disconnect
    clock: Callable[[], datetime] = utc_now
    send_coa: CoaSender = send_coa
    tariffs: TariffCache = field(default_factory=TariffCache)
    metrics: WorkerMetrics = field(default_factory=WorkerMetrics)

    def run_cycle(self) -> None:
        try:
            with self.metrics.cycle_seconds.time():
                self._cycle()
        except SQLAlchemyError:
            self.metrics.cycles.labels(outcome="db_error").inc()
            raise
        except Exception:
            self.metrics.cycles.labels(outcome="error").inc()
            raise
        self.metrics.cycles.labels(outcome="ok").inc()
        self.metrics.last_cycle.set_to_current_time()

    def _cycle(self) -> None:
        now = self.clock()
        with self.transaction() as db:
            billed = bill_open_gates(db, self.tariffs, now)
        if billed:
            log.debug("billed the open gates of %d silent standalone session(s) up to now", billed)
        with self.transaction() as db:
            plan = plan_cuts(db, self.policy, now)
            self.metrics.set_held(held_counts(db))
        _log_plan(plan)
        self.metrics.stale_closed.inc(plan.stale_closed)
        with self.transaction() as db:
            cuts = claim_due_cuts(db, now)
        for cut in cuts:
            if cut.attempt == 1:
                self.metrics.cuts.labels(reason=cut.reason).inc()
        for cut in cuts:
            if cut.source == "portal":
                self._close_gate(cut)
        self._disconnect([cut for cut in cuts if cut.source != "portal"])

    def _close_gate(self, cut: ClaimedCut) -> None:
        client = f"{cut.framed_ip or '-'} / {cut.calling_station_id or '-'}"
        try:
            if cut.framed_ip is None:
                raise ValueError("the session has no client address")
            self.close_gate(cut.framed_ip, cut.calling_station_id)
        except Exception as exc:  # any driver failure: keep going, the row is retried after its back-off
            self.metrics.gates.labels(outcome="failed").inc()
            log.error(
                "session %d (%s): closing the gate for %s failed (attempt %d): %s; next try in %d s",
                cut.session_id,
                cut.reason,
                client,
                cut.attempt,
                exc,
                next_attempt_delay_s(cut),
            )
            return
        with self.transaction() as db:
            record_gate_closed(db, self.tariffs, cut, self.clock())
        self.metrics.gates.labels(outcome="closed").inc()
        log.info("session %d (%s): gate closed for %s, session closed", cut.session_id, cut.reason, client)

    def _disconnect(self, cuts: list[ClaimedCut]) -> None:
        addressable = []
        for cut in cuts:
            if cut.nas_ip is None:
                with self.transaction() as db:
                    record_no_nas(db, cut, self.clock())
                self.metrics.nas_answers.labels(request=_request(cut), outcome="no_nas").inc()
                log.warning("session %d (%s): no NAS known, cannot send a Disconnect", cut.session_id, cut.reason)
            else:
                addressable.append(cut)
        if not addressable:
            return
        with ThreadPoolExecutor(max_workers=min(PARALLEL_SENDS, len(addressable))) as pool:
            futures = {pool.submit(self._ask_nas, cut): cut for cut in addressable}
            for future in as_completed(futures):
                self._record_answer(futures[future], future)

    def _ask_nas(self, cut: ClaimedCut) -> NasAnswer:
        assert cut.nas_ip is not None and cut.nas_coa_port is not None and cut.nas_secret is not None
        nas = NasAddress(cut.nas_ip, cut.nas_coa_port, cut.nas_secret)
        identity = SessionIdentity(
            user_name=cut.user_name,
            acct_session_id=cut.acct_session_id,
            nas_ip=cut.nas_ip,
            framed_ip=cut.framed_ip,
        )
        if cut.reason != COA_REASON:
            return self.send(nas, identity, self.clock())
        with self.transaction() as db:
            limits = limits_for_nas(db, self.tariffs, cut, self.clock())
        if limits is None:
            raise NoAnswer("the session ended before its CoA was sent")
        attributes = [item[:2] for item in accept_reply(limits, cut.token) if item[0] != "Class"]
        return self.send_coa(nas, identity, attributes, self.clock())

    def _record_answer(self, cut: ClaimedCut, future: Future[NasAnswer]) -> None:
        where = f"NAS {cut.nas_name} ({cut.nas_ip}:{cut.nas_coa_port})"
        request = "CoA" if cut.reason == COA_REASON else "Disconnect"
        try:
            answer = future.result()
        except Exception as exc:  # NoAnswer, or the network refused: both count as an unanswered attempt
            self.metrics.nas_answers.labels(request=_request(cut), outcome="timeout").inc()
            with self.transaction() as db:
                final = record_no_answer(db, cut, self.clock())
            log.warning(
                "session %d (%s): %s to %s failed, attempt %d/%d: %s; %s",
                cut.session_id,
                cut.reason,
                request,
                where,
                cut.attempt,
                MAX_NAS_ATTEMPTS,
                exc,
                "giving up (timeout)" if final else f"next try in {next_attempt_delay_s(cut)} s",
            )
            return
        with self.transaction() as db:
            if answer.acked:
                record_ack(db, cut, self.clock())
                closed = False
            else:
                closed = record_nak(db, cut, answer.error_cause, self.clock())
        self.metrics.nas_answers.labels(request=_request(cut), outcome="ack" if answer.acked else "nak").inc()
        if answer.acked:
            log.info("session %d (%s): %s-ACK from %s", cut.session_id, cut.reason, request, where)
        else:
            log.warning(
                "session %d (%s): %s-NAK from %s: %s%s",
                cut.session_id,
                cut.reason,
                request,
                where,
                error_cause_name(answer.error_cause),
                "; the NAS has no such session: closed at its last counters" if closed else "",
            )


def _request(cut: ClaimedCut) -> str:
    return "coa" if cut.reason == COA_REASON else "disconnect"


def _log_plan(plan: CutPlan) -> None:
    if plan.stale_closed:
        log.info("closed %d stale session(s) at their last counters", plan.stale_closed)
    for cut in plan.queued:
        log.info("session %d must be cut: %s", cut.session_id, cut.reason)
    for cut in plan.cancelled:
        log.info(
            "session %d no longer needs cutting (%s): it ended or its card is usable again", cut.session_id, cut.reason
        )
    for session_id in plan.new_limits:
        log.info("session %d: its balance went up before it was cut: its NAS gets the new limits (CoA)", session_id)
