"""Buffered accounting through a real radiusd: answered as soon as it is in the detail file, billed from
there by the hotspot-buffer server, exactly as if it had been billed before the answer."""

from __future__ import annotations

import time

from sqlalchemy import Engine

from rlm_hotspot.pins import PinVault
from tests.e2e.conftest import wait_until
from tests.e2e.radius_harness import NAS_BY_VENDOR, RadiusServer, build_world, login_happened_earlier
from tests.e2e.test_radius_accounting import assert_balanced, rows

MIKROTIK = NAS_BY_VENDOR["mikrotik"]


def report_one_session(server: RadiusServer, radius_db: Engine, vault: PinVault, session_id: str) -> None:
    """A login, then the NAS reports its whole 601 s session at once, each packet's delay said, one Interim
    retransmitted: Start, Interim, Interim again, Stop."""
    batch = build_world(radius_db, vault, traffic_price=10)
    number = batch.numbers[0]
    accepted = server.login(number, batch.pins[0], nas_ip=MIKROTIK)
    login_happened_earlier(radius_db, 601)
    ids = {"User_Name": number, "Acct_Session_Id": session_id, "Class": accepted.one("Class")}
    interim = {"Acct_Session_Time": 300, "Acct_Input_Octets": 100_000, "Acct_Output_Octets": 1_900_000}
    for status, counters in (
        ("start", {"Acct_Session_Time": 0, "Acct_Delay_Time": 601}),
        ("interim", {**interim, "Acct_Delay_Time": 301}),
        ("interim", {**interim, "Acct_Delay_Time": 302}),  # a retransmit
        ("stop", {"Acct_Session_Time": 601, "Acct_Input_Octets": 200_000, "Acct_Output_Octets": 2_800_000}),
    ):
        assert server.account(status, nas_ip=MIKROTIK, **ids, **counters) is not None


def assert_billed_once_at_the_nas_time(radius_db: Engine) -> None:
    """What the direct path bills for `report_one_session`: each interval at its own time, the retransmit
    never."""
    assert rows(radius_db, "SELECT cause, amount FROM ledger ORDER BY id") == [
        ("card_load", 500),
        ("time", -10),
        ("traffic", -20),
        ("time", -12),
        ("traffic", -10),
    ]
    assert rows(radius_db, "SELECT seconds, charged FROM sessions") == [(601, 52)]
    assert_balanced(radius_db)


def test_a_buffered_session_is_billed_exactly_once_and_at_the_nas_time(
    buffered_radius_server: RadiusServer, radius_db: Engine, vault: PinVault
) -> None:
    started = time.monotonic()
    report_one_session(buffered_radius_server, radius_db, vault, "B1")
    answered_in = time.monotonic() - started
    wait_until(lambda: rows(radius_db, "SELECT status FROM sessions") == [("closed",)], what="the buffer drained")
    assert answered_in < 1.0
    assert_billed_once_at_the_nas_time(radius_db)
