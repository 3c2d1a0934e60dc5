"""Two radiusd+rlm_hotspot nodes on one database, as a NAS's primary and secondary RADIUS server."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from rlm_hotspot.pins import PinVault
from tests.db.helpers import assert_ledger_balanced
from tests.e2e.radius_harness import NAS_BY_VENDOR, RadiusServer, build_world, login_happened_earlier

MIKROTIK = NAS_BY_VENDOR["mikrotik"]
LIMIT = 3
LOGINS = 16


def rows(engine: Engine, sql: str) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(sql))]


def test_the_simultaneous_use_limit_holds_across_nodes(
    radius_pair: tuple[RadiusServer, RadiusServer], radius_db: Engine, vault: PinVault
) -> None:
    batch = build_world(radius_db, vault)
    with radius_db.begin() as conn:  # before any login: no node has the tariff cached yet
        conn.execute(text("UPDATE tariffs SET simultaneous_use = :limit"), {"limit": LIMIT})
    barrier = threading.Barrier(LOGINS)

    def login(index: int) -> bool:
        node = radius_pair[index % 2]
        barrier.wait()
        mac = f"02-00-00-00-00-{index:02X}"
        # 16 logins of one card queue on its row lock: on a busy 2-core machine the last may wait seconds
        # (a NAS would retransmit; what is tested here is the count, not the latency)
        reply = node.login(batch.numbers[0], batch.pins[0], nas_ip=MIKROTIK, Calling_Station_Id=mac, timeout=15)
        return reply.accepted

    with ThreadPoolExecutor(LOGINS) as pool:
        accepted = list(pool.map(login, range(LOGINS)))
    assert sum(accepted) == LIMIT, accepted
    assert rows(radius_db, "SELECT count(*) FROM sessions") == [(LIMIT,)]


def test_accounting_delivered_to_both_nodes_bills_once(
    radius_pair: tuple[RadiusServer, RadiusServer], radius_db: Engine, vault: PinVault
) -> None:
    """A NAS that fails over retransmits to its secondary what its primary may have billed already: every
    packet here reaches both nodes at once."""
    batch = build_world(radius_db, vault, traffic_price=10)  # 1.20/hour per started minute + 0.10/MB
    number = batch.numbers[0]
    accepted = radius_pair[0].login(number, batch.pins[0], nas_ip=MIKROTIK)
    login_happened_earlier(radius_db, 601)
    ids = {"User_Name": number, "Acct_Session_Id": "A1", "Class": accepted.one("Class")}

    def to_both(status: str, **counters: object) -> None:
        with ThreadPoolExecutor(2) as pool:
            replies = list(pool.map(lambda node: node.account(status, nas_ip=MIKROTIK, **ids, **counters), radius_pair))
        assert all(reply is not None for reply in replies), f"{status}: a node did not acknowledge"

    to_both("start", Acct_Session_Time=0, Acct_Delay_Time=601, Framed_IP_Address="10.1.0.5")
    to_both("interim", Acct_Session_Time=300, Acct_Input_Octets=100_000, Acct_Output_Octets=1_900_000,
            Acct_Delay_Time=301)  # fmt: skip
    to_both("stop", Acct_Session_Time=601, Acct_Input_Octets=200_000, Acct_Output_Octets=2_800_000,
            Acct_Terminate_Cause="User-Request")  # fmt: skip
    assert rows(radius_db, "SELECT cause, sum(amount) FROM ledger GROUP BY cause ORDER BY cause") == [
        ("card_load", 500),
        ("time", -22),  # 11 started minutes at 1.20/hour
        ("traffic", -30),  # 3 MB at 0.10/MB
    ]
    assert rows(radius_db, "SELECT status, seconds, charged, terminate_cause FROM sessions") == [
        ("closed", 601, 52, "User-Request")
    ]
    with Session(radius_db) as session:
        assert_ledger_balanced(session)
