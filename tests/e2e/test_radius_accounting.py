"""Accounting through a real radiusd with rlm_hotspot: exact debits, replays, gigawords, NAS reboots."""

from __future__ import annotations

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from rlm_hotspot.pins import PinVault
from tests.db.helpers import assert_ledger_balanced
from tests.e2e.radius_harness import NAS_BY_VENDOR, RadiusServer, build_world, login_happened_earlier

MIKROTIK = NAS_BY_VENDOR["mikrotik"]


def rows(engine: Engine, sql: str, **params: object) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(sql), params)]


def assert_balanced(engine: Engine) -> None:
    with Session(engine) as session:
        assert_ledger_balanced(session)


def test_full_session_bills_exactly_once(radius_server: RadiusServer, radius_db: Engine, vault: PinVault) -> None:
    batch = build_world(radius_db, vault, traffic_price=10)  # 1.20/hour per started minute + 0.10/MB
    number = batch.numbers[0]
    accepted = radius_server.login(number, batch.pins[0], nas_ip=MIKROTIK)
    login_happened_earlier(radius_db, 601)  # the NAS reports the whole session now, each packet's delay said
    ids = {"User_Name": number, "Acct_Session_Id": "A1", "Class": accepted.one("Class")}

    def account(status: str, **counters: object) -> None:
        assert radius_server.account(status, nas_ip=MIKROTIK, **ids, **counters) is not None

    account("start", Acct_Session_Time=0, Acct_Delay_Time=601, Framed_IP_Address="10.1.0.5")
    assert rows(radius_db, "SELECT status, framed_ip::text FROM sessions") == [("open", "10.1.0.5/32")]
    interim = {"Acct_Session_Time": 300, "Acct_Input_Octets": 100_000, "Acct_Output_Octets": 1_900_000}
    account("interim", **interim, Acct_Delay_Time=301)
    account("interim", **interim, Acct_Delay_Time=302)  # a retransmit
    account(
        "stop",
        Acct_Session_Time=601,
        Acct_Input_Octets=200_000,
        Acct_Output_Octets=2_800_000,
        Acct_Terminate_Cause="User-Request",
    )
    reordered = {"Acct_Session_Time": 450, "Acct_Input_Octets": 150_000, "Acct_Output_Octets": 2_000_000}
    account("interim", **reordered, Acct_Delay_Time=151)
    assert rows(radius_db, "SELECT cause, amount FROM ledger ORDER BY id") == [
        ("card_load", 500),
        ("time", -10),  # 5 started minutes at 1.20/hour
        ("traffic", -20),  # 2 MB at 0.10/MB
        ("time", -12),  # 11 started minutes in all
        ("traffic", -10),  # 3 MB in all
    ]
    assert rows(radius_db, "SELECT status, seconds, charged, terminate_cause FROM sessions") == [
        ("closed", 601, 52, "User-Request")
    ]
    assert rows(radius_db, "SELECT balance FROM accounts") == [(448,)]
    assert_balanced(radius_db)


def test_gigawords_and_an_interim_without_start(
    radius_server: RadiusServer, radius_db: Engine, vault: PinVault
) -> None:
    batch = build_world(radius_db, vault)
    reply = radius_server.account(
        "interim",
        nas_ip=MIKROTIK,
        User_Name=batch.numbers[0],
        Acct_Session_Id="LOST",
        Acct_Session_Time=120,
        Acct_Input_Octets=5000,
        Acct_Input_Gigawords=1,
        Acct_Output_Octets=7,
        Acct_Output_Gigawords=2,
    )
    assert reply is not None
    assert rows(radius_db, "SELECT seconds, input_octets, output_octets FROM sessions") == [
        (120, (1 << 32) | 5000, (2 << 32) | 7)
    ]
    assert rows(radius_db, "SELECT cause, amount FROM ledger ORDER BY id") == [("card_load", 500), ("time", -4)]


def test_coovachilli_client_view_counters_are_swapped(
    radius_server: RadiusServer, radius_db: Engine, vault: PinVault
) -> None:
    batch = build_world(radius_db, vault)
    reply = radius_server.account(
        "start",
        nas_ip=NAS_BY_VENDOR["chilli"],
        User_Name=batch.numbers[0],
        Acct_Session_Id="C1",
        Acct_Session_Time=60,
        Acct_Input_Octets=9_000,  # the client's downloads, in CoovaChilli's default view
        Acct_Output_Octets=300,
        CoovaChilli_Acct_View_Point="Client-View-Point",
    )
    assert reply is not None
    assert rows(radius_db, "SELECT input_octets, output_octets FROM sessions") == [(300, 9_000)]


def test_accounting_on_closes_every_session_of_the_nas(
    radius_server: RadiusServer, radius_db: Engine, vault: PinVault
) -> None:
    batch = build_world(radius_db, vault, count=3)
    for i, number in enumerate(batch.numbers[:2]):
        radius_server.account("start", nas_ip=MIKROTIK, User_Name=number, Acct_Session_Id=f"S{i}", Acct_Session_Time=0)
    radius_server.account(
        "start", nas_ip=NAS_BY_VENDOR["wispr"], User_Name=batch.numbers[2], Acct_Session_Id="W", Acct_Session_Time=0
    )
    assert radius_server.account("on", nas_ip=MIKROTIK) is not None
    assert rows(radius_db, "SELECT acct_session_id, status, terminate_cause FROM sessions ORDER BY id") == [
        ("S0", "closed", "NAS-Reboot"),
        ("S1", "closed", "NAS-Reboot"),
        ("W", "open", None),
    ]


def test_packets_that_cannot_be_billed_are_acknowledged(
    radius_server: RadiusServer, radius_db: Engine, vault: PinVault
) -> None:
    build_world(radius_db, vault)
    # no NAS-IP-Address: the virtual server takes the packet source (127.0.0.1), which is no known NAS
    assert radius_server.account("start", nas_ip=None, User_Name="x", Acct_Session_Id="U1") is not None
    assert "accounting from unknown NAS 127.0.0.1" in radius_server.log_text()
    assert radius_server.account("interim", nas_ip=MIKROTIK, Acct_Session_Id="U2", Acct_Session_Time=5) is not None
    assert rows(radius_db, "SELECT count(*) FROM sessions") == [(0,)]
