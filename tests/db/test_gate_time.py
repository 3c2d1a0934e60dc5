"""No free Internet by going quiet (issue 16, items 5 and 7), through the worker on the real PostgreSQL:
a standalone session pays for every second its gate is open — billed while the page is silent and up to
the cut — so a card that logs in and never sends a heartbeat cannot collect the heartbeat timeout, once
or again and again; a hidden page keeps its session for the hotspot's hidden grace (billed), a closed
page ends a few seconds after it says so."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from rlm_hotspot.core.heartbeat import CLOSED_PAGE_SLACK_S, PageState
from rlm_hotspot.pins import PinVault
from rlm_hotspot.services import cards
from rlm_hotspot.services.portal import mark_page_state
from rlm_hotspot.services.sessions import open_portal_session, post_heartbeat
from rlm_hotspot.services.tariff_cache import TariffCache
from tests.conftest import NOW
from tests.db import factories
from tests.db.helpers import assert_ledger_balanced
from tests.db.test_enforcement import POLICY, FakeGate, portal_world, session_row, worker_at

CYCLE = timedelta(seconds=5)  # the worker's default interval
TIMEOUT_S = 90  # portal_world's heartbeat timeout


def login_at(db: Session, vault: PinVault, number: str, pin: str, hotspot_id: int, at: datetime):  # type: ignore[no-untyped-def]
    return open_portal_session(
        db,
        vault,
        TariffCache(),
        POLICY,
        card_text=number,
        pin=pin,
        hotspot_id=hotspot_id,
        client_ip="10.77.0.2",
        client_mac=None,
        now=at,
    )


def run_worker_until_closed(db: Session, session_id: int, clock: list[datetime], gate: FakeGate) -> None:
    worker = worker_at(db, clock, gate)
    for _ in range(1000):
        worker.run_cycle()
        if session_row(db, session_id).status == "closed":
            return
        clock[0] += CYCLE
    raise AssertionError("the worker never cut the session")


def test_a_card_that_never_sends_a_heartbeat_pays_for_every_second_its_gate_was_open_every_time(
    db: Session, vault: PinVault
) -> None:
    hotspots, numbers, pins = portal_world(db, vault, ("on",))
    clock = [NOW]
    gate = FakeGate()
    paid = 0
    for _ in range(3):  # log in, go quiet, get cut, log in again at once
        status = login_at(db, vault, numbers[0], pins[0], hotspots["on"], clock[0])
        opened = clock[0]
        run_worker_until_closed(db, status.session_id, clock, gate)
        row = session_row(db, status.session_id)
        open_s = int((row.stopped_at - opened).total_seconds())
        assert row.terminate_cause == "Heartbeat-Timeout" and row.stopped_at == clock[0]
        assert TIMEOUT_S < open_s <= TIMEOUT_S + 5  # cut within a cycle of the timeout
        assert row.seconds == open_s and row.charged == open_s  # 0.01 a second: every second billed
        paid += open_s
    assert cards.find_card(db, numbers[0]).balance == 500 - paid
    assert len(gate.calls) == 3
    assert_ledger_balanced(db)


def test_while_a_page_is_silent_the_worker_bills_its_open_gate_so_an_empty_card_is_cut(
    db: Session, vault: PinVault
) -> None:
    hotspots, _, _ = portal_world(db, vault, ("on",))
    small = factories.batch(db, vault, count=1, face_value=60)  # 0.60: a minute online
    status = login_at(db, vault, small.numbers[0], small.pins[0], hotspots["on"], NOW)
    mark_page_state(db, status.token, PageState.HIDDEN, NOW)  # hidden: 600 s of grace, far more than the card buys
    clock = [NOW + timedelta(seconds=TIMEOUT_S // 2)]
    worker = worker_at(db, clock, FakeGate())
    worker.run_cycle()  # within half the timeout of the last billing: nothing to bill yet
    assert session_row(db, status.session_id).seconds == 0
    clock[0] += timedelta(seconds=1)
    worker.run_cycle()
    assert session_row(db, status.session_id).seconds == TIMEOUT_S // 2 + 1
    run_worker_until_closed(db, status.session_id, clock, FakeGate())
    row = session_row(db, status.session_id)
    assert row.terminate_cause == "Balance-Exhausted"
    assert row.seconds <= 60 + TIMEOUT_S // 2 + 5  # noticed within half the timeout and a cycle
    assert_ledger_balanced(db)


def test_a_hidden_page_gets_its_grace_and_a_closed_page_ends_within_the_slack(db: Session, vault: PinVault) -> None:
    hotspots, numbers, pins = portal_world(db, vault, ("on", "grace"))
    hidden = login_at(db, vault, numbers[0], pins[0], hotspots["on"], NOW)
    closed = login_at(db, vault, numbers[1], pins[1], hotspots["grace"], NOW)
    third = factories.batch(db, vault, count=1)
    reloaded = login_at(db, vault, third.numbers[0], third.pins[0], hotspots["grace"], NOW)
    db.execute(text("UPDATE hotspots SET hidden_grace = 300"))  # the hotspot's setting (default 600 s)
    tariffs = TariffCache()
    mark_page_state(db, hidden.token, PageState.HIDDEN, NOW)
    mark_page_state(db, closed.token, PageState.CLOSED, NOW)
    mark_page_state(db, reloaded.token, PageState.CLOSED, NOW)
    post_heartbeat(db, tariffs, reloaded.token, NOW + timedelta(seconds=2))  # a reload: the new page's sign of life
    clock = [NOW + timedelta(seconds=CLOSED_PAGE_SLACK_S)]
    worker = worker_at(db, clock, FakeGate())
    worker.run_cycle()
    assert session_row(db, closed.session_id).status == "open"  # a reload's sign of life may still come
    clock[0] += timedelta(seconds=1)
    worker.run_cycle()
    row = session_row(db, closed.session_id)
    assert (row.status, row.terminate_cause, row.seconds) == ("closed", "Page-Closed", CLOSED_PAGE_SLACK_S + 1)
    assert session_row(db, reloaded.session_id).status == "open"  # it spoke after it said closed
    clock[0] = NOW + timedelta(seconds=300)
    worker.run_cycle()
    assert session_row(db, hidden.session_id).status == "open"  # within its hidden grace
    assert session_row(db, reloaded.session_id).terminate_cause == "Heartbeat-Timeout"  # a page that went quiet
    clock[0] += timedelta(seconds=1)
    worker.run_cycle()
    row = session_row(db, hidden.session_id)
    assert (row.status, row.terminate_cause, row.seconds) == ("closed", "Page-Hidden", 301)  # the grace is billed
    assert_ledger_balanced(db)
