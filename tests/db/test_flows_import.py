"""NetFlow batches into debits: attribution, exact rating, replays, free and unattributed traffic."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from rlm_hotspot.pins import PinVault
from rlm_hotspot.services import flows
from rlm_hotspot.services.errors import ServiceError
from rlm_hotspot.services.flows import Direction, FlowBatch, ImportPolicy, TrafficCount
from tests.conftest import NOW
from tests.db import factories
from tests.db.helpers import assert_ledger_balanced
from tests.db.test_flow_world import (
    HOTSPOT,
    MB,
    NIGHT_PRICE_PER_MB,
    balance,
    flow_world,
    open_session,
    price,
    traffic_debited,
)

POLICY = ImportPolicy(bin_seconds=60, grace_seconds=180)
BIN = NOW  # 15:00 in Moscow: day price


def batch(
    name: str,
    *counts: tuple[str, int] | tuple[str, int, bool],
    direction: Direction = Direction.DOWNLOAD,
    bin_start=BIN,
) -> FlowBatch:  # type: ignore[no-untyped-def]
    """A batch of (ip, bytes[, free]) counts in one bin."""
    return FlowBatch(
        name=name,
        direction=direction,
        bin_start=bin_start,
        counts=tuple(TrafficCount(c[0], bin_start, c[1], bool(c[2]) if len(c) > 2 else False) for c in counts),
    )


def run(session: Session, *flow_batches: FlowBatch) -> flows.ImportOutcome:
    return flows.import_batches(session, HOTSPOT, flow_batches, NOW + timedelta(minutes=5), POLICY)


def unattributed(session: Session) -> list[tuple[str, bool, int]]:
    rows = session.execute(text("SELECT host(ip) AS ip, free, bytes FROM unattributed_traffic ORDER BY ip, free"))
    return [(r.ip, r.free, r.bytes) for r in rows]


def test_each_guest_pays_exactly_for_its_bytes_and_a_replay_changes_nothing(db: Session, vault: PinVault) -> None:
    numbers = flow_world(db, vault)
    alice = open_session(db, numbers[0], "10.1.0.11")
    bob = open_session(db, numbers[1], "10.1.0.12")
    down = batch("down-1#0:down/1", ("10.1.0.11", 3 * MB + 5), ("10.1.0.12", 123_457))
    up = batch("up-1#0:up/2", ("10.1.0.11", 400_000), direction=Direction.UPLOAD)
    first = run(db, down)
    run(db, up)
    assert first.imported == (down.name,) and first.sessions == 2 and first.billable_bytes == 3 * MB + 5 + 123_457
    # Cumulative rounding: 3 MB + 5 B then 0.4 MB cost ceil(3.400005 * 7) = 24, not 22 + 3.
    assert traffic_debited(db, alice.account_id) == price(3 * MB + 5 + 400_000) == 24
    assert traffic_debited(db, bob.account_id) == price(123_457) == 1
    replay = run(db, down)
    assert (replay.imported, replay.replayed) == ((), (down.name,))
    assert traffic_debited(db, alice.account_id) == 24
    assert balance(db, alice.account_id) == 500 - 24
    session = db.execute(text("SELECT * FROM sessions WHERE id = :s"), {"s": alice.session_id}).one()
    assert (session.output_octets, session.input_octets, session.charged) == (3 * MB + 5, 400_000, 24)
    ledger = db.execute(
        text("SELECT bytes, session_id, card_id FROM ledger WHERE cause = 'traffic' AND account_id = :a"),
        {"a": alice.account_id},
    ).all()
    assert sorted(ledger) == sorted(
        [(3 * MB + 5, alice.session_id, alice.card_id), (400_000, alice.session_id, alice.card_id)]
    )
    assert_ledger_balanced(db)


def test_many_small_batches_cost_the_same_as_one_big_one(db: Session, vault: PinVault) -> None:
    numbers = flow_world(db, vault)
    guest = open_session(db, numbers[0], "10.1.0.11")
    sizes = [1, 999, 142_857, 3, 285_714, 1_000_000, 77]
    for index, size in enumerate(sizes):
        run(db, batch(f"down-{index}#0:down/1", ("10.1.0.11", size), bin_start=BIN + timedelta(minutes=index)))
    assert traffic_debited(db, guest.account_id) == price(sum(sizes))
    assert_ledger_balanced(db)


def test_the_band_at_the_bin_start_in_local_time_prices_the_bytes(db: Session, vault: PinVault) -> None:
    numbers = flow_world(db, vault)
    guest = open_session(db, numbers[0], "10.1.0.11", started_at=BIN - timedelta(hours=12))
    night = BIN.replace(hour=19, minute=0)  # 22:00 in Moscow
    run(db, batch("down-night#0:down/1", ("10.1.0.11", 2 * MB), bin_start=night))
    assert traffic_debited(db, guest.account_id) == 2 * NIGHT_PRICE_PER_MB
    after_midnight = BIN.replace(hour=22, minute=0)  # 01:00 in Moscow: the night band runs on until 07:00
    run(db, batch("down-late#0:down/1", ("10.1.0.11", MB), bin_start=after_midnight))
    assert traffic_debited(db, guest.account_id) == 3 * NIGHT_PRICE_PER_MB


def test_only_the_tariff_direction_is_billed_but_all_bytes_are_counted(db: Session, vault: PinVault) -> None:
    numbers = flow_world(db, vault, direction="download")
    guest = open_session(db, numbers[0], "10.1.0.11")
    run(db, batch("up-1#0:up/1", ("10.1.0.11", 5 * MB), direction=Direction.UPLOAD))
    assert traffic_debited(db, guest.account_id) == 0
    run(db, batch("down-1#0:down/1", ("10.1.0.11", MB)))
    assert traffic_debited(db, guest.account_id) == price(MB)
    counters = db.execute(
        text("SELECT input_octets, output_octets FROM sessions WHERE id = :s"), {"s": guest.session_id}
    ).one()
    assert tuple(counters) == (5 * MB, MB)


def test_free_traffic_costs_nothing_but_stays_visible(db: Session, vault: PinVault) -> None:
    numbers = flow_world(db, vault)
    guest = open_session(db, numbers[0], "10.1.0.11")
    outcome = run(db, batch("down-1#0:down/1", ("10.1.0.11", 9 * MB, True), ("10.1.0.11", MB)))
    assert (outcome.free_bytes, outcome.billable_bytes) == (9 * MB, MB)
    assert traffic_debited(db, guest.account_id) == price(MB)
    assert (
        db.execute(text("SELECT output_octets FROM sessions WHERE id = :s"), {"s": guest.session_id}).scalar()
        == 10 * MB
    )
    stored = db.execute(text("SELECT free_bytes, billable_bytes FROM flow_batches")).one()
    assert tuple(stored) == (9 * MB, MB)


def test_batches_imported_together_cost_the_same_and_replay_per_batch(db: Session, vault: PinVault) -> None:
    numbers = flow_world(db, vault)
    guest = open_session(db, numbers[0], "10.1.0.11", started_at=BIN - timedelta(hours=12))
    night = BIN.replace(hour=19, minute=0)  # 22:00 in Moscow: the night price
    day = batch("down-day#0:down/1", ("10.1.0.11", 3 * MB + 1))
    night_up = batch("up-night#0:up/1", ("10.1.0.11", MB), direction=Direction.UPLOAD, bin_start=night)
    night_down = batch("down-night#0:down/1", ("10.1.0.11", 2 * MB), bin_start=night)
    run(db, day)
    together = run(db, day, night_up, night_down)  # a backlog: one transaction, one debit per session
    assert together.replayed == (day.name,) and len(together.imported) == 2
    exact = price(3 * MB + 1) + 0  # day bytes alone, then night bytes on the same cumulative meter:
    cumulative_num = (3 * MB + 1) * 7 + 3 * MB * NIGHT_PRICE_PER_MB
    assert traffic_debited(db, guest.account_id) == -(-cumulative_num // MB) and exact == 22
    keys = db.execute(text("SELECT idempotency_key FROM ledger WHERE cause = 'traffic' ORDER BY id")).scalars().all()
    assert len(keys) == 2 and all(key.startswith("flow:") for key in keys)
    assert not run(db, night_up, night_down).imported
    imports = db.execute(
        text("SELECT batches, batch_count, billable_bytes, debited FROM admin_flow_imports ORDER BY import_id")
    ).all()  # one row per transaction, with its batches and the money that belongs to it
    assert [tuple(row) for row in imports] == [
        ([day.name], 1, 3 * MB + 1, exact),
        ([night_up.name, night_down.name], 2, 3 * MB, traffic_debited(db, guest.account_id) - exact),
    ]
    assert_ledger_balanced(db)


def test_attribution_grace_window_ip_reuse_and_unattributed_traffic(db: Session, vault: PinVault) -> None:
    numbers = flow_world(db, vault)
    # The IP's previous holder stopped 1 min before the bin; the new holder started 30 s into it: latest wins.
    previous = open_session(
        db, numbers[0], "10.1.0.11", started_at=BIN - timedelta(hours=1), stopped_at=BIN - timedelta(minutes=1)
    )
    current = open_session(db, numbers[1], "10.1.0.11", started_at=BIN + timedelta(seconds=30))
    # Stopped 2 min before the bin (inside the 3 min grace): its late flows are still its own.
    late = open_session(db, numbers[2], "10.1.0.12", stopped_at=BIN - timedelta(minutes=2))
    # Stopped 4 min before the bin: outside the grace window, nobody holds the IP.
    gone = open_session(db, numbers[3], "10.1.0.13", stopped_at=BIN - timedelta(minutes=4))
    # Starts after the bin ends: cannot own it.
    future = open_session(db, numbers[4], "10.1.0.14", started_at=BIN + timedelta(minutes=1))
    outcome = run(
        db,
        batch(
            "down-1#0:down/1",
            ("10.1.0.11", MB),
            ("10.1.0.12", 2 * MB),
            ("10.1.0.13", 3 * MB),
            ("10.1.0.14", 4 * MB),
            ("10.1.0.15", 5 * MB, True),
        ),
    )
    assert traffic_debited(db, current.account_id) == price(MB)
    assert traffic_debited(db, previous.account_id) == 0
    assert traffic_debited(db, late.account_id) == price(2 * MB)
    assert traffic_debited(db, gone.account_id) == 0
    assert traffic_debited(db, future.account_id) == 0
    assert unattributed(db) == [("10.1.0.13", False, 3 * MB), ("10.1.0.14", False, 4 * MB), ("10.1.0.15", True, 5 * MB)]
    assert outcome.unattributed_bytes == 12 * MB
    assert_ledger_balanced(db)


def test_a_session_of_another_hotspot_never_gets_the_bytes(db: Session, vault: PinVault) -> None:
    numbers = flow_world(db, vault)
    factories.hotspot(db, "elsewhere", "per-mb", mode="standalone", traffic_meter="netflow")
    other = open_session(db, numbers[0], "10.1.0.11", hotspot="elsewhere")
    run(db, batch("down-1#0:down/1", ("10.1.0.11", MB)))
    assert traffic_debited(db, other.account_id) == 0
    assert unattributed(db) == [("10.1.0.11", False, MB)]


def test_a_radius_metered_hotspot_is_refused(db: Session, vault: PinVault) -> None:
    flow_world(db, vault)
    factories.hotspot(db, "radius-cafe", "per-mb", mode="radius", traffic_meter="radius")
    with pytest.raises(ServiceError, match="twice"):
        flows.import_batches(db, "radius-cafe", [batch("down-1#0:down/1", ("10.1.0.11", MB))], NOW, POLICY)


def test_exhausted_accounts_with_open_sessions_are_listed_for_the_cut(db: Session, vault: PinVault) -> None:
    numbers = flow_world(db, vault)
    spender = open_session(db, numbers[0], "10.1.0.11")
    saver = open_session(db, numbers[1], "10.1.0.12")
    outcome = run(db, batch("down-1#0:down/1", ("10.1.0.11", 80 * MB), ("10.1.0.12", MB)))
    assert outcome.exhausted_accounts == (spender.account_id,)
    assert balance(db, spender.account_id) == 500 - price(80 * MB)  # overshoot is recorded, not hidden
    listed = flows.accounts_exhausted_with_open_sessions(db)
    assert [(s.session_id, s.framed_ip) for s in listed] == [(spender.session_id, "10.1.0.11")]
    assert saver.session_id not in {s.session_id for s in listed}
    assert_ledger_balanced(db)


def test_status_reports_the_last_batch_lag_and_unattributed_bytes(db: Session, vault: PinVault) -> None:
    numbers = flow_world(db, vault)
    open_session(db, numbers[0], "10.1.0.11")
    run(db, batch("down-1#0:down/1", ("10.1.0.11", MB), ("10.1.0.77", 5)))
    status = flows.import_status(db, HOTSPOT, BIN + timedelta(minutes=2), timedelta(hours=1))
    assert status.last_batch == "down-1#0:down/1"
    assert status.lag_seconds == 60
    assert (status.unattributed_bytes, status.billable_bytes, status.debited) == (5, MB, price(MB))


def test_bytes_are_summed_per_bin_and_holder_across_blocks_and_bins(db: Session, vault: PinVault) -> None:
    numbers = flow_world(db, vault)
    # 10.1.0.11 changes hands between two bins: the previous holder stopped 30 s into the first, the
    # current one started 30 s into the second (latest start wins there).
    previous = open_session(
        db, numbers[0], "10.1.0.11", started_at=BIN - timedelta(hours=1), stopped_at=BIN + timedelta(seconds=30)
    )
    current = open_session(db, numbers[1], "10.1.0.11", started_at=BIN + timedelta(seconds=90))
    second_bin = BIN + timedelta(minutes=1)
    # One batch spanning both bins (a memory-table poll); a second block of the first bin (nfacctd restarted
    # within the minute) counting the same IP twice.
    spanning = FlowBatch(
        "down-1#0:down/1",
        Direction.DOWNLOAD,
        BIN,
        counts=(TrafficCount("10.1.0.11", BIN, MB, False), TrafficCount("10.1.0.11", second_bin, 2 * MB, False)),
    )
    restarted = batch("down-1#0:down/2", ("10.1.0.11", 3 * MB), ("10.1.0.11", 4 * MB), ("10.1.0.11", 5, True))
    outcome = run(db, spanning, restarted)
    assert traffic_debited(db, previous.account_id) == price(8 * MB)
    assert traffic_debited(db, current.account_id) == price(2 * MB)
    counters = db.execute(text("SELECT id, output_octets FROM sessions ORDER BY id")).all()
    assert [tuple(row) for row in counters] == [(previous.session_id, 8 * MB + 5), (current.session_id, 2 * MB)]
    assert (outcome.sessions, outcome.billable_bytes, outcome.free_bytes) == (2, 10 * MB, 5)
    assert_ledger_balanced(db)


def test_a_session_still_waiting_for_its_start_makes_its_bytes_unattributed(db: Session, vault: PinVault) -> None:
    numbers = flow_world(db, vault)
    earlier = open_session(db, numbers[0], "10.1.0.11", started_at=BIN - timedelta(hours=1))
    # A RADIUS login accepted later on the same IP, no Accounting-Start yet: no account to bill.
    db.execute(
        text(
            """
            INSERT INTO sessions (status, card_id, hotspot_id, tariff_id, source, auth_token, framed_ip, started_at,
                                  last_seen_at)
            SELECT 'pending', c.id, h.id, h.tariff_id, 'radius', 'pending-1', '10.1.0.11', :t, :t
            FROM cards c, hotspots h WHERE c.number = :number AND h.name = :hotspot
            """
        ),
        {"t": BIN - timedelta(minutes=1), "number": numbers[1], "hotspot": HOTSPOT},
    )
    outcome = run(db, batch("down-1#0:down/1", ("10.1.0.11", MB), ("10.1.0.11", 7, True)))
    assert traffic_debited(db, earlier.account_id) == 0
    assert unattributed(db) == [("10.1.0.11", False, MB), ("10.1.0.11", True, 7)]
    assert (outcome.sessions, outcome.unattributed_bytes) == (0, MB + 7)
    assert_ledger_balanced(db)


def test_a_batch_without_counts_is_recorded_and_bills_nothing(db: Session, vault: PinVault) -> None:
    numbers = flow_world(db, vault)
    guest = open_session(db, numbers[0], "10.1.0.11")
    outcome = run(db, batch("down-1#0:down/1"))  # an empty purge, or an empty poll of the memory table
    assert (outcome.imported, outcome.sessions, outcome.debited) == (("down-1#0:down/1",), 0, 0)
    assert traffic_debited(db, guest.account_id) == 0
    assert not run(db, batch("down-1#0:down/1")).imported
