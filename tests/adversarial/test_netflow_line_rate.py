"""NetFlow counts no line could carry: billed up to the hotspot's line rate x the bin, the excess held in the
quarantine (and billed only if an admin releases it), against the real database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from rlm_hotspot.pins import PinVault
from rlm_hotspot.services import flows
from rlm_hotspot.services.errors import ServiceError
from rlm_hotspot.services.flows import Direction, FlowBatch, ImportPolicy, TrafficCount, line_rate_bound
from tests.conftest import NOW
from tests.db.helpers import assert_ledger_balanced
from tests.db.test_flow_world import HOTSPOT, MB, flow_world, open_session, price, traffic_debited

POLICY = ImportPolicy(bin_seconds=60, grace_seconds=180)
RATE_KBPS = 8_000  # 1 MB/s: a bin carries 60 MB, 63 MB with the slack
BOUND = line_rate_bound(RATE_KBPS, 60)


def batch(
    name: str, *counts: tuple[str, int], direction: Direction = Direction.DOWNLOAD, free: bool = False
) -> FlowBatch:
    return FlowBatch(name, direction, NOW, [TrafficCount(ip, NOW, size, free) for ip, size in counts])


def run(session: Session, *batches: FlowBatch) -> flows.ImportOutcome:
    return flows.import_batches(session, HOTSPOT, batches, NOW + timedelta(minutes=2), POLICY)


def held_rows(session: Session) -> list[dict[str, object]]:
    rows = session.execute(text("SELECT * FROM quarantine ORDER BY id")).mappings()
    return [dict(row) for row in rows]


def set_line_rate(session: Session, kbps: int) -> None:
    session.execute(
        text("UPDATE hotspots SET max_rate_kbps = :kbps WHERE name = :name"), {"kbps": kbps, "name": HOTSPOT}
    )


def test_the_bound_is_the_line_rate_times_the_bin_plus_five_percent() -> None:
    assert line_rate_bound(1_000_000, 60) == 7_875_000_000  # 1 Gbit/s: 125 MB/s x 60 s x 1.05
    assert BOUND == 63 * MB


def test_a_petabyte_count_bills_at_most_line_rate_times_the_bin_and_holds_the_rest(
    db: Session, vault: PinVault
) -> None:
    numbers = flow_world(db, vault, night_band=False)
    alice = open_session(db, numbers[0], "10.1.0.11")
    bob = open_session(db, numbers[1], "10.1.0.12")
    bound = line_rate_bound(1_000_000, 60)  # the default line rate of sql/012
    outcome = run(db, batch("down#1", ("10.1.0.11", 10**15), ("10.1.0.12", 3 * MB)))
    assert traffic_debited(db, alice.account_id) == price(bound)  # 551.25 EUR-cents ... not 70,000,000.00
    assert traffic_debited(db, bob.account_id) == price(3 * MB)  # the other record is billed as ever
    (row,) = held_rows(db)
    assert (row["source"], row["reason"], row["quantity"], row["state"]) == (
        "netflow",
        "bytes-beyond-line-rate",
        "download",
        "held",
    )
    assert (row["held"], row["reported"], row["session_id"]) == (10**15 - bound, 10**15, alice.session_id)
    assert row["identity"] == f"down#1 ip 10.1.0.11 bin {NOW.isoformat()}"
    assert row["detail"]["billed_up_to"] == bound and row["received_at"] == NOW + timedelta(minutes=2)
    assert [(h.reason, h.held) for h in outcome.held] == [("bytes-beyond-line-rate", 10**15 - bound)]
    assert outcome.billable_bytes == bound + 3 * MB
    # A re-delivered batch is held once (and billed once).
    assert run(db, batch("down#1", ("10.1.0.11", 10**15), ("10.1.0.12", 3 * MB))).replayed == ("down#1",)
    assert len(held_rows(db)) == 1
    assert traffic_debited(db, alice.account_id) == price(bound)
    assert_ledger_balanced(db)


def test_the_bound_applies_to_the_sum_of_an_ips_counts_in_a_bin_each_way(db: Session, vault: PinVault) -> None:
    numbers = flow_world(db, vault, night_band=False)
    set_line_rate(db, RATE_KBPS)
    alice = open_session(db, numbers[0], "10.1.0.11")
    # Two blocks of one bin, 40 MB each, down; 40 MB up: the download sum is 17 MB beyond the bound.
    run(
        db,
        batch("down#1", ("10.1.0.11", 40 * MB)),
        batch("down#2", ("10.1.0.11", 40 * MB)),
        batch("up#1", ("10.1.0.11", 40 * MB), direction=Direction.UPLOAD),
    )
    assert traffic_debited(db, alice.account_id) == price(BOUND + 40 * MB)
    (row,) = held_rows(db)
    assert (row["held"], row["reported"], row["identity"]) == (
        80 * MB - BOUND,
        80 * MB,
        f"down#1 ip 10.1.0.11 bin {NOW.isoformat()}",
    )
    octets = db.execute(
        text("SELECT output_octets, input_octets FROM sessions WHERE id = :id"), {"id": alice.session_id}
    ).one()
    assert tuple(octets) == (BOUND, 40 * MB)
    assert_ledger_balanced(db)


def test_a_count_beyond_bigint_is_held_and_never_stops_the_import(db: Session, vault: PinVault) -> None:
    numbers = flow_world(db, vault, night_band=False)
    alice = open_session(db, numbers[0], "10.1.0.11")
    bob = open_session(db, numbers[1], "10.1.0.12")
    bound = line_rate_bound(1_000_000, 60)
    outcome = run(db, batch("down#1", ("10.1.0.11", 10**20), ("10.1.0.12", MB), ("10.9.9.9", 10**19)))
    assert traffic_debited(db, bob.account_id) == price(MB)
    assert traffic_debited(db, alice.account_id) == price(bound)
    rows = {row["identity"].split(" ip ")[1].split()[0]: row for row in held_rows(db)}
    assert rows["10.1.0.11"]["reason"] == "counter-out-of-range"
    assert rows["10.1.0.11"]["reported"] is None  # beyond NUMERIC(20, 0): the exact figure is in detail
    assert rows["10.1.0.11"]["detail"]["bytes"] == str(10**20)
    assert rows["10.1.0.11"]["held"] == 10**20 - bound
    assert (rows["10.9.9.9"]["reason"], rows["10.9.9.9"]["session_id"]) == ("counter-out-of-range", None)
    assert rows["10.9.9.9"]["held"] == 10**19 - bound
    # Nobody held 10.9.9.9: its plausible part is stored as unattributed, within BIGINT.
    assert db.execute(text("SELECT bytes FROM unattributed_traffic")).scalar_one() == bound
    assert outcome.unattributed_bytes == bound
    assert_ledger_balanced(db)


def test_release_bills_the_excess_through_the_rating_path_once(db: Session, vault: PinVault) -> None:
    numbers = flow_world(db, vault, night_band=False)
    set_line_rate(db, RATE_KBPS)
    alice = open_session(db, numbers[0], "10.1.0.11")
    run(db, batch("down#1", ("10.1.0.11", 100 * MB + 1)))
    assert traffic_debited(db, alice.account_id) == price(BOUND)
    (row,) = held_rows(db)
    debited = flows.release_held_traffic(db, row["id"], NOW + timedelta(hours=1))
    assert debited == price(100 * MB + 1) - price(BOUND)  # rounded once, on the session's cumulative meter
    assert traffic_debited(db, alice.account_id) == price(100 * MB + 1)
    key = db.execute(text("SELECT idempotency_key FROM ledger WHERE cause = 'traffic' ORDER BY id DESC LIMIT 1"))
    assert key.scalar_one() == f"release:{row['id']}:{alice.session_id}"
    assert (
        db.execute(text("SELECT output_octets FROM sessions WHERE id = :id"), {"id": alice.session_id}).scalar_one()
        == 100 * MB + 1
    )
    db.execute(text("UPDATE quarantine SET state = 'released', resolved_at = :now"), {"now": NOW})  # the lead's CLI
    with pytest.raises(ServiceError, match="is released, not held"):
        flows.release_held_traffic(db, row["id"], NOW + timedelta(hours=1))
    assert_ledger_balanced(db)


def test_release_refuses_rows_without_a_session_or_beyond_bigint(db: Session, vault: PinVault) -> None:
    numbers = flow_world(db, vault, night_band=False)
    open_session(db, numbers[0], "10.1.0.11")
    set_line_rate(db, RATE_KBPS)
    run(db, batch("down#1", ("10.9.9.9", 100 * MB), ("10.1.0.11", 10**20)))
    rows = {row["session_id"] is None: row["id"] for row in held_rows(db)}
    with pytest.raises(ServiceError, match="has no session"):
        flows.release_held_traffic(db, rows[True], NOW)
    with pytest.raises(ServiceError, match="beyond BIGINT"):
        flows.release_held_traffic(db, rows[False], NOW)
    with pytest.raises(ServiceError, match="no quarantine row"):
        flows.release_held_traffic(db, 987654, NOW)
    assert_ledger_balanced(db)


def test_an_excess_is_held_for_the_session_the_core_gives_the_bin_or_none(db: Session, vault: PinVault) -> None:
    """The IP's latest session is a RADIUS login still waiting for its Accounting-Start (no account): the
    plausible part is unattributed, and the excess names no session — not the earlier holder's."""
    numbers = flow_world(db, vault, night_band=False)
    earlier = open_session(db, numbers[0], "10.1.0.11", started_at=NOW - timedelta(hours=1))
    db.execute(
        text(
            """
            INSERT INTO sessions (status, card_id, hotspot_id, tariff_id, source, auth_token, framed_ip, started_at,
                                  last_seen_at)
            SELECT 'pending', c.id, h.id, h.tariff_id, 'radius', 'pending-1', '10.1.0.11', :t, :t
            FROM cards c, hotspots h WHERE c.number = :number AND h.name = :hotspot
            """
        ),
        {"t": NOW - timedelta(minutes=1), "number": numbers[1], "hotspot": HOTSPOT},
    )
    set_line_rate(db, RATE_KBPS)
    run(db, batch("down#1", ("10.1.0.11", 100 * MB)))
    assert traffic_debited(db, earlier.account_id) == 0
    (row,) = held_rows(db)
    assert (row["session_id"], row["held"]) == (None, 100 * MB - BOUND)
    assert db.execute(text("SELECT bytes FROM unattributed_traffic")).scalar_one() == BOUND
