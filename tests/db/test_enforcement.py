"""The worker's rules against the real PostgreSQL: every cut reason, the idempotent queue, stale sessions,
the heartbeat rule, standalone gates, and what each NAS answer does (the NAS itself is faked here; the
real UDP exchange is in tests/e2e/test_worker_disconnect.py)."""

from __future__ import annotations

import logging
import os
import threading
import time
from contextlib import nullcontext
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from rlm_hotspot.cli.main import cli
from rlm_hotspot.db.enforcement import WakeListener, queue_logout
from rlm_hotspot.db.engine import make_engine
from rlm_hotspot.db.ledger import post_entry
from rlm_hotspot.nas.coa import NasAddress, NasAnswer, NoAnswer, SessionIdentity
from rlm_hotspot.pins import PinVault
from rlm_hotspot.services import cards, catalog, flows
from rlm_hotspot.services.access import Policy
from rlm_hotspot.services.enforcement import CutPlan, claim_due_cuts, plan_cuts, record_ack
from rlm_hotspot.services.flows import Direction, FlowBatch, ImportPolicy, TrafficCount
from rlm_hotspot.services.sessions import AccountingUpdate, open_portal_session, post_heartbeat, record_accounting
from rlm_hotspot.services.tariff_cache import TariffCache
from rlm_hotspot.settings import Settings
from rlm_hotspot.worker.cycle import Worker
from rlm_hotspot.worker.loop import run_until_stopped
from tests.conftest import NOW
from tests.db import factories
from tests.db.helpers import assert_ledger_balanced
from tests.db.test_flow_world import HOTSPOT, MB, balance, flow_world, open_session, price, traffic_debited

NAS_IP = "192.0.2.10"
POLICY = Policy(pending_session_ttl_s=120)
LATER = NOW + timedelta(minutes=10)  # sessions kept alive by an Interim at LATER are not stale
FLOW_POLICY = ImportPolicy(bin_seconds=60, grace_seconds=180)


def radius_world(db: Session, vault: PinVault, count: int = 3, heartbeat_rule: str = "off", **batch: object):
    """1.20/hour per started minute, a RADIUS hotspot (heartbeats off unless asked) and its NAS."""
    factories.tariff(db, time_increment_seconds=60)
    factories.hotspot(db, heartbeat=heartbeat_rule)
    catalog.add_nas(db, name="nas1", hotspot="cafe", ip_address=NAS_IP, secret="s3", coa_port=3799, vendor="chilli")
    return factories.batch(db, vault, count=count, hotspot="cafe", **batch)


def account(db: Session, status: str, at: datetime, number: str, acct_id: str, **values: object) -> int:
    update = AccountingUpdate(status=status, nas_ip=NAS_IP, username=number, acct_session_id=acct_id, **values)
    result = record_accounting(db, TariffCache(), update, at)
    assert result.session_id is not None
    return result.session_id


def started(db: Session, number: str, acct_id: str, *, alive_until: datetime = LATER, **values: object) -> int:
    """An open RADIUS session from NOW, its last Interim at `alive_until`."""
    session_id = account(db, "start", NOW, number, acct_id, session_time=0, **values)
    seconds = int((alive_until - NOW).total_seconds())
    account(db, "interim", alive_until, number, acct_id, session_time=seconds)
    return session_id


def drain(db: Session, number: str) -> None:
    card = cards.find_card(db, number)
    assert card.account_id is not None and card.balance is not None
    post_entry(db, account_id=card.account_id, amount=-card.balance, cause="adjustment", key=f"drain:{number}", now=NOW)


def queued(plan: CutPlan) -> dict[int, str]:
    return {cut.session_id: cut.reason for cut in plan.queued}


def session_row(db: Session, session_id: int):  # type: ignore[no-untyped-def]
    return db.execute(
        text("SELECT status, stopped_at, terminate_cause, seconds, charged FROM sessions WHERE id = :id"),
        {"id": session_id},
    ).one()


def disconnect_rows(db: Session, session_id: int) -> list[tuple]:
    rows = db.execute(
        text(
            "SELECT reason, attempts, outcome, error_cause, done_at IS NOT NULL FROM disconnects "
            "WHERE session_id = :id ORDER BY id"
        ),
        {"id": session_id},
    )
    return [tuple(r) for r in rows]


def test_each_reason_is_queued_once_and_dropped_when_no_longer_true(db: Session, vault: PinVault) -> None:
    batch = radius_world(db, vault, count=4)
    short = factories.batch(db, vault, count=1, hotspot="cafe", validity=timedelta(minutes=5))
    n = batch.numbers
    exhausted, blocked, healthy, blocked_and_exhausted = (started(db, n[i], f"A{i}") for i in range(4))
    expired = started(db, short.numbers[0], "E")
    drain(db, n[0])
    drain(db, n[3])
    cards.set_blocked(db, blocked=True, number=n[1])
    cards.set_blocked(db, blocked=True, number=n[3])

    plan = plan_cuts(db, POLICY, LATER)
    assert queued(plan) == {
        exhausted: "exhausted",
        blocked: "blocked",
        expired: "expired",
        blocked_and_exhausted: "blocked",  # the first reason that applies
    }
    assert healthy not in queued(plan)
    again = plan_cuts(db, POLICY, LATER + timedelta(seconds=5))
    assert (again.queued, again.cancelled) == ([], [])  # one pending row per session, however often
    pending = db.execute(text("SELECT count(*) FROM disconnects WHERE done_at IS NULL")).scalar_one()
    assert pending == 4

    cards.set_blocked(db, blocked=False, number=n[1])
    unblocked = plan_cuts(db, POLICY, LATER + timedelta(seconds=10))
    assert [(c.session_id, c.reason) for c in unblocked.cancelled] == [(blocked, "blocked")]
    assert disconnect_rows(db, blocked) == [("blocked", 0, None, None, True)]
    assert_ledger_balanced(db)


def test_expiry_uses_the_cards_effective_deadline(db: Session, vault: PinVault) -> None:
    batch = radius_world(db, vault, count=1, validity=timedelta(minutes=5))
    session_id = account(db, "start", NOW, batch.numbers[0], "V", session_time=0)
    deadline = cards.deadline_of(cards.find_card(db, batch.numbers[0]), NOW)
    assert deadline == NOW + timedelta(minutes=5)
    assert queued(plan_cuts(db, POLICY, deadline - timedelta(seconds=1))) == {}
    assert queued(plan_cuts(db, POLICY, deadline)) == {session_id: "expired"}


def test_stale_sessions_close_at_their_last_counters_without_another_debit(db: Session, vault: PinVault) -> None:
    batch = radius_world(db, vault, count=1)
    number = batch.numbers[0]
    session_id = started(db, number, "S", alive_until=NOW + timedelta(seconds=60))
    balance = cards.find_card(db, number).balance
    assert balance == 500 - 2  # one started minute at 1.20/h
    silent_for = 2 * 300 + 120 + 1  # 2 x interim interval + stale grace
    plan = plan_cuts(db, POLICY, NOW + timedelta(seconds=60 + silent_for))
    assert (plan.stale_closed, plan.queued) == (1, [])
    status, stopped_at, cause, seconds, charged = session_row(db, session_id)
    assert (status, stopped_at, cause, seconds, charged) == ("closed", NOW + timedelta(seconds=60), "Stale", 60, 2)
    assert cards.find_card(db, number).balance == balance
    assert disconnect_rows(db, session_id) == []
    assert_ledger_balanced(db)


def portal_world(db: Session, vault: PinVault, rules: tuple[str, ...]) -> tuple[dict[str, int], list[str], list[str]]:
    """One standalone hotspot per heartbeat rule (timeout 90 s), 0.60 per minute billed per second."""
    factories.tariff(db, time_price=60, time_unit_seconds=60)
    hotspots = {
        rule: factories.hotspot(
            db, name=f"h-{rule}", mode="standalone", traffic_meter="netflow", heartbeat=rule, heartbeat_timeout=90
        )
        for rule in rules
    }
    batch = factories.batch(db, vault, count=len(rules))
    return hotspots, batch.numbers, batch.pins


def portal_login(db: Session, vault: PinVault, number: str, pin: str, hotspot_id: int, ip: str, mac: str | None):
    return open_portal_session(
        db,
        vault,
        TariffCache(),
        POLICY,
        card_text=number,
        pin=pin,
        hotspot_id=hotspot_id,
        client_ip=ip,
        client_mac=mac,
        now=NOW,
    )


def test_heartbeat_rule_on_and_grace_cut_after_the_timeout_off_never(db: Session, vault: PinVault) -> None:
    rules = ("on", "grace", "off")
    hotspots, numbers, pins = portal_world(db, vault, rules)
    ids = {
        rule: portal_login(db, vault, numbers[i], pins[i], hotspots[rule], f"10.77.0.{i + 2}", None).session_id
        for i, rule in enumerate(rules)
    }
    assert queued(plan_cuts(db, POLICY, NOW + timedelta(seconds=90))) == {}
    assert queued(plan_cuts(db, POLICY, NOW + timedelta(seconds=91))) == {
        ids["on"]: "heartbeat",
        ids["grace"]: "heartbeat",
    }


def test_a_heartbeat_restarts_the_timeout(db: Session, vault: PinVault) -> None:
    hotspots, numbers, pins = portal_world(db, vault, ("on",))
    status = portal_login(db, vault, numbers[0], pins[0], hotspots["on"], "10.77.0.2", None)
    post_heartbeat(db, TariffCache(), status.token, NOW + timedelta(seconds=60))
    assert queued(plan_cuts(db, POLICY, NOW + timedelta(seconds=150))) == {}
    assert queued(plan_cuts(db, POLICY, NOW + timedelta(seconds=151))) == {status.session_id: "heartbeat"}


class FakeGate:
    def __init__(self, failures: int = 0) -> None:
        self.calls: list[tuple[str, str | None]] = []
        self.failures = failures

    def __call__(self, ip: str, mac: str | None) -> None:
        self.calls.append((ip, mac))
        if len(self.calls) <= self.failures:
            raise RuntimeError("nft: permission denied")


def worker_at(db: Session, when: list[datetime], gate: FakeGate | None = None, send=None) -> Worker:  # type: ignore[no-untyped-def]
    """A worker on the test's transaction whose clock reads when[0] (tests move it)."""

    def no_nas_expected(nas: NasAddress, identity: SessionIdentity, now: datetime) -> NasAnswer:
        raise AssertionError("no Disconnect-Request expected")

    return Worker(
        transaction=lambda: nullcontext(db),
        policy=POLICY,
        close_gate=gate or FakeGate(),
        send=send or no_nas_expected,
        clock=lambda: when[0],
    )


def test_standalone_cut_closes_the_gate_then_the_session_billed_to_the_cut(db: Session, vault: PinVault) -> None:
    hotspots, numbers, pins = portal_world(db, vault, ("on",))
    status = portal_login(db, vault, numbers[0], pins[0], hotspots["on"], "10.77.0.2", "02-00-00-77-00-02")
    post_heartbeat(db, TariffCache(), status.token, NOW + timedelta(seconds=30))
    balance = cards.find_card(db, numbers[0]).balance
    assert balance == 500 - 30
    gate = FakeGate(failures=1)
    clock = [NOW + timedelta(seconds=30 + 91)]
    worker = worker_at(db, clock, gate)

    worker.run_cycle()  # the gate fails: the session stays open, the row waits for its retry
    assert gate.calls == [("10.77.0.2", "02-00-00-77-00-02")]
    assert session_row(db, status.session_id).status == "open"
    assert disconnect_rows(db, status.session_id) == [("heartbeat", 1, None, None, False)]
    clock[0] += timedelta(seconds=10)
    worker.run_cycle()  # within the 15 s back-off: not tried again
    assert len(gate.calls) == 1
    clock[0] += timedelta(seconds=5)
    worker.run_cycle()
    assert len(gate.calls) == 2
    assert disconnect_rows(db, status.session_id) == [("heartbeat", 2, "gate_closed", None, True)]
    closed = session_row(db, status.session_id)
    online = int((clock[0] - NOW).total_seconds())  # 136 s: the gate let traffic through until then
    assert (closed.status, closed.stopped_at, closed.terminate_cause, closed.seconds) == (
        "closed",
        clock[0],
        "Heartbeat-Timeout",
        online,
    )
    assert cards.find_card(db, numbers[0]).balance == 500 - online  # billed to the cut, not the last heartbeat
    assert_ledger_balanced(db)


def test_a_stale_standalone_session_gets_its_gate_closed_too(db: Session, vault: PinVault) -> None:
    hotspots, numbers, pins = portal_world(db, vault, ("off",))
    status = portal_login(db, vault, numbers[0], pins[0], hotspots["off"], "10.77.0.9", None)
    gate = FakeGate()
    worker_at(db, [NOW + timedelta(seconds=2 * 300 + 120 + 1)], gate).run_cycle()
    assert gate.calls == [("10.77.0.9", None)]
    assert session_row(db, status.session_id).terminate_cause == "Stale"


def test_a_cut_netflow_session_ends_when_cut_and_its_late_flows_are_billed(db: Session, vault: PinVault) -> None:
    """Heartbeat off, NetFlow meter: nothing moves `last_seen_at` after the login. The cut session still
    ends at the cut, so the flows of its last minutes, imported after it within the grace window, are its
    own (the overshoot is billed) and its duration is the time its gate was open."""
    numbers = flow_world(db, vault)
    guest = open_session(db, numbers[0], "10.1.0.11", started_at=NOW - timedelta(hours=1))
    flows.import_batches(db, HOTSPOT, (flow_batch("d-1", NOW - timedelta(minutes=3), 80 * MB),), NOW, FLOW_POLICY)
    assert balance(db, guest.account_id) == 500 - price(80 * MB) < 0
    gate = FakeGate()
    worker_at(db, [NOW], gate).run_cycle()
    assert gate.calls == [("10.1.0.11", None)]
    assert session_row(db, guest.session_id)[:3] == ("closed", NOW, "Balance-Exhausted")
    # the minute before the cut, exported and imported 2 minutes after it (grace: 3 minutes)
    late = flow_batch("d-2", NOW - timedelta(minutes=1), 2 * MB)
    outcome = flows.import_batches(db, HOTSPOT, (late,), NOW + timedelta(minutes=2), FLOW_POLICY)
    assert outcome.unattributed_bytes == 0
    assert traffic_debited(db, guest.account_id) == price(82 * MB)
    assert_ledger_balanced(db)


def flow_batch(name: str, bin_start: datetime, downloaded: int) -> FlowBatch:
    """One bin of downloads by the client 10.1.0.11."""
    count = TrafficCount("10.1.0.11", bin_start, downloaded, False)
    return FlowBatch(name=f"{name}#0:down/1", direction=Direction.DOWNLOAD, bin_start=bin_start, counts=(count,))


def scripted_nas(answers: dict[str, NasAnswer | None], sent: list[SessionIdentity]):  # type: ignore[no-untyped-def]
    """A fake sender answering per Acct-Session-Id (None: no answer)."""

    def send(nas: NasAddress, identity: SessionIdentity, now: datetime) -> NasAnswer:
        assert nas == NasAddress(NAS_IP, 3799, "s3")
        sent.append(identity)
        answer = answers[str(identity.acct_session_id)]
        if answer is None:
            raise NoAnswer("no answer")
        return answer

    return send


def test_nas_answers_ack_nak_and_silence(db: Session, vault: PinVault) -> None:
    batch = radius_world(db, vault, count=3)
    ids = [started(db, number, f"X{i}", framed_ip="10.1.0.9") for i, number in enumerate(batch.numbers)]
    for number in batch.numbers:
        drain(db, number)
    sent: list[SessionIdentity] = []
    answers = {"X0": NasAnswer(acked=True), "X1": NasAnswer(acked=False, error_cause=503), "X2": None}
    clock = [LATER]
    worker = worker_at(db, clock, send=scripted_nas(answers, sent))

    worker.run_cycle()
    assert sent[0] == SessionIdentity(batch.numbers[0], "X0", NAS_IP, "10.1.0.9")
    assert disconnect_rows(db, ids[0]) == [("exhausted", 1, "ack", None, True)]
    assert session_row(db, ids[0]).status == "open"  # the NAS's Accounting-Stop closes it, with final counters
    assert disconnect_rows(db, ids[1]) == [("exhausted", 1, "nak", 503, True)]
    not_found = session_row(db, ids[1])
    assert (not_found.status, not_found.stopped_at, not_found.terminate_cause) == ("closed", LATER, "Balance-Exhausted")
    assert disconnect_rows(db, ids[2]) == [("exhausted", 1, "timeout", None, False)]

    for wait in (15, 60):  # the back-off after attempts 1 and 2
        clock[0] += timedelta(seconds=wait - 1)
        worker.run_cycle()
        assert len(sent) == 3 + (wait == 60)
        clock[0] += timedelta(seconds=1)
        worker.run_cycle()
    assert len(sent) == 5
    assert disconnect_rows(db, ids[2]) == [("exhausted", 3, "timeout", None, True)]  # given up
    clock[0] += timedelta(seconds=300)
    worker.run_cycle()
    assert len(sent) == 5  # not asked again before ASK_AGAIN_AFTER_S
    assert_ledger_balanced(db)


def test_a_radius_session_without_nas_is_recorded_as_such(db: Session, vault: PinVault) -> None:
    batch = radius_world(db, vault, count=1)
    session_id = started(db, batch.numbers[0], "N")
    drain(db, batch.numbers[0])
    db.execute(text("UPDATE sessions SET nas_id = NULL WHERE id = :id"), {"id": session_id})
    worker_at(db, [LATER]).run_cycle()
    assert disconnect_rows(db, session_id) == [("exhausted", 1, "no_nas", None, True)]


def test_radius_session_without_heartbeats_is_cut_under_the_heartbeat_rule(db: Session, vault: PinVault) -> None:
    batch = radius_world(db, vault, count=1, heartbeat_rule="on")
    session_id = account(db, "start", NOW, batch.numbers[0], "H", session_time=0)
    assert queued(plan_cuts(db, POLICY, NOW + timedelta(seconds=91))) == {session_id: "heartbeat"}


def test_the_loop_waits_out_a_database_outage(caplog: pytest.LogCaptureFixture) -> None:
    stop = threading.Event()
    cycles: list[int] = []

    class FlakyWorker:
        def run_cycle(self) -> None:
            cycles.append(1)
            if len(cycles) == 1:
                raise OperationalError("SELECT 1", {}, Exception("connection refused"))
            stop.set()

    with caplog.at_level(logging.INFO, logger="rlm_hotspot.worker"):
        run_until_stopped(FlakyWorker(), 0.01, stop)  # type: ignore[arg-type]
    assert len(cycles) == 2
    assert "database unavailable (connection refused); next try in 0.01 s" in caplog.text
    assert "database reachable again" in caplog.text


def test_hotspotctl_worker_once_and_a_bad_gate_option(committed: Engine, database_url: str, key_file: Path) -> None:
    env = {"HOTSPOT_DATABASE_URL": database_url, "HOTSPOT_PIN_KEY_FILE": str(key_file), "HOTSPOT_CONFIG": os.devnull}
    runner = CliRunner()
    done = runner.invoke(cli, ["worker", "--once"], env=env)
    assert done.exit_code == 0, done.output
    bad = runner.invoke(cli, ["worker", "--once", "--gate", "nftables", "--gate-option", "colour=blue"], env=env)
    assert bad.exit_code == 2 and "unknown option(s) colour" in bad.output
    assert "Traceback" not in bad.output


def test_a_nas_stop_after_a_disconnect_keeps_the_workers_reason(db: Session, vault: PinVault) -> None:
    """The NAS's Accounting-Stop after a Disconnect says Admin-Reset whatever the reason: the session keeps
    the worker's cause — also when the Stop comes before the worker has recorded the ACK — and a cause the
    NAS gives for reasons of its own stands."""
    batch = radius_world(db, vault, count=5)
    n = batch.numbers
    exhausted, blocked, early_stop, logged_out, uncut = (started(db, n[i], f"R{i}") for i in range(5))
    drain(db, n[0])
    cards.set_blocked(db, blocked=True, number=n[1])
    drain(db, n[2])
    token = db.execute(text("SELECT auth_token FROM sessions WHERE id = :id"), {"id": logged_out}).scalar_one()
    assert queue_logout(db, token, LATER)
    plan_cuts(db, POLICY, LATER)
    claimed = {cut.session_id: cut for cut in claim_due_cuts(db, LATER)}
    assert set(claimed) == {exhausted, blocked, early_stop, logged_out}
    stop = {"session_time": 700, "terminate_cause": "Admin-Reset"}
    account(db, "stop", LATER, n[2], "R2", **stop)  # before its ACK is recorded
    for session_id in (exhausted, blocked, logged_out):
        record_ack(db, claimed[session_id], LATER)
    account(db, "stop", LATER, n[0], "R0", **stop)
    account(db, "stop", LATER, n[1], "R1", **stop)
    account(db, "stop", LATER, n[3], "R3", **stop)
    account(db, "stop", LATER, n[4], "R4", **stop)  # an operator's reset at the NAS: nothing to replace
    causes = {session_id: session_row(db, session_id).terminate_cause for session_id in claimed | {uncut: None}}
    assert causes == {
        exhausted: "Balance-Exhausted",
        blocked: "Card-Blocked",
        early_stop: "Balance-Exhausted",
        logged_out: "User-Request",
        uncut: "Admin-Reset",
    }


def test_a_logout_wakes_the_worker_at_once(committed: Engine, vault: PinVault, settings: Settings) -> None:
    """A guest's logout in RADIUS mode is sent at once: its commit wakes the worker's wait (NOTIFY), not
    the next cycle, here a minute away."""
    with Session(committed) as db, db.begin():
        batch = radius_world(db, vault, count=1)
        started(db, batch.numbers[0], "W1")
        token = db.execute(text("SELECT auth_token FROM sessions")).scalar_one()
    stop, cycles = threading.Event(), threading.Semaphore(0)

    class CountingWorker:
        def run_cycle(self) -> None:
            cycles.release()

    wake = WakeListener(make_engine(settings, pool_size=1, pre_ping=False))
    loop = threading.Thread(target=run_until_stopped, args=(CountingWorker(), 60.0, stop, wake))
    loop.start()
    try:
        assert cycles.acquire(timeout=5)  # the first cycle, then a minute's wait
        time.sleep(0.3)  # the wait is listening
        with Session(committed) as db, db.begin():
            assert queue_logout(db, token, LATER)
        began = time.monotonic()
        assert cycles.acquire(timeout=5), "the logout did not wake the worker"
        assert time.monotonic() - began < 2
    finally:
        stop.set()
        loop.join(timeout=5)
        wake.close()
