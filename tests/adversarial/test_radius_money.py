"""Accounting as real equipment sends it on a bad day, through a real radiusd and PostgreSQL: no packet may
move money it should not.

Every packet here tells when it was sent in its Acct-Delay-Time, as a NAS's retransmit queue does, so a
session's ten minutes can be reported within a second of the test; the bound on online time is the wall
clock since the session started, and that is what the delays make true.
"""

from __future__ import annotations

import os
from decimal import Decimal

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from rlm_hotspot.cli.main import cli
from rlm_hotspot.pins import PinVault
from tests.db.helpers import assert_ledger_balanced
from tests.e2e.radius_harness import NAS_BY_VENDOR, RadiusServer, build_world, login_happened_earlier

pytestmark = pytest.mark.e2e
MIKROTIK = NAS_BY_VENDOR["mikrotik"]
MINUTE_PRICE = 2  # build_world's tariff: 1.20/hour per started minute


class Nas:
    """A NAS sending accounting packets for events `ago` seconds in the past (Acct-Delay-Time)."""

    def __init__(self, server: RadiusServer, nas_ip: str = MIKROTIK) -> None:
        self.server, self.nas_ip = server, nas_ip

    def send(self, status: str, ago: int = 0, **attributes: object) -> None:
        reply = self.server.account(status, nas_ip=self.nas_ip, Acct_Delay_Time=ago, **attributes)
        assert reply is not None, f"{status} {attributes} was not answered"


def rows(engine: Engine, sql: str, **params: object) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(sql), params)]


def charged_by_card(engine: Engine) -> dict[str, int]:
    return dict(
        rows(  # type: ignore[arg-type]
            engine,
            "SELECT c.number, -sum(l.amount) FROM ledger l JOIN cards c ON c.id = l.card_id "
            "WHERE l.cause IN ('time', 'traffic') GROUP BY c.number",
        )
    )


def assert_balanced(engine: Engine) -> None:
    with Session(engine) as session:
        assert_ledger_balanced(session)


def test_another_cards_packets_with_a_used_session_id_are_that_cards_session(
    radius_server: RadiusServer, radius_db: Engine, vault: PinVault
) -> None:
    card_a, card_b = build_world(radius_db, vault, count=2).numbers
    nas = Nas(radius_server)
    nas.send("start", 1200, User_Name=card_a, Acct_Session_Id="7", Acct_Session_Time=0)
    nas.send("stop", 600, User_Name=card_a, Acct_Session_Id="7", Acct_Session_Time=600)
    sessions_of_a = "SELECT id, seconds, charged, stopped_at FROM sessions WHERE username = :card"
    before = rows(radius_db, sessions_of_a, card=card_a)
    # card B, on the same NAS, gets the same Acct-Session-Id and uses more than A did
    nas.send("start", 500, User_Name=card_b, Acct_Session_Id="7", Acct_Session_Time=0)
    nas.send("interim", 200, User_Name=card_b, Acct_Session_Id="7", Acct_Session_Time=300, Acct_Output_Octets=10**6)
    nas.send("stop", 0, User_Name=card_b, Acct_Session_Id="7", Acct_Session_Time=500, Acct_Output_Octets=2 * 10**6)
    assert rows(radius_db, sessions_of_a, card=card_a) == before
    assert charged_by_card(radius_db) == {card_a: 10 * MINUTE_PRICE, card_b: 9 * MINUTE_PRICE}
    assert_balanced(radius_db)


@pytest.mark.parametrize("accounting_on", [True, False], ids=["after-accounting-on", "counters-restart"])
def test_the_same_card_and_id_after_a_nas_reboot_is_a_new_session_billed_in_full(
    radius_server: RadiusServer, radius_db: Engine, vault: PinVault, accounting_on: bool
) -> None:
    (card,) = build_world(radius_db, vault, count=1).numbers
    nas = Nas(radius_server)
    ids = {"User_Name": card, "Acct_Session_Id": "1"}  # a router that numbers sessions from 1 after each boot
    nas.send("start", 1200, **ids, Acct_Session_Time=0)
    nas.send("interim", 900, **ids, Acct_Session_Time=300)
    if accounting_on:
        nas.send("on", 800)
    nas.send("start", 700, **ids, Acct_Session_Time=0)
    nas.send("interim", 400, **ids, Acct_Session_Time=300)
    nas.send("stop", 0, **ids, Acct_Session_Time=700, Acct_Terminate_Cause="User-Request")
    causes = "NAS-Reboot" if accounting_on else "Lost-Service"
    assert rows(radius_db, "SELECT seconds, status, terminate_cause FROM sessions ORDER BY started_at") == [
        (300, "closed", causes),
        (700, "closed", "User-Request"),
    ]
    assert charged_by_card(radius_db) == {card: (5 + 12) * MINUTE_PRICE}
    assert_balanced(radius_db)


def test_a_late_copy_of_a_closed_sessions_packet_changes_nothing(
    radius_server: RadiusServer, radius_db: Engine, vault: PinVault
) -> None:
    (card,) = build_world(radius_db, vault, count=1).numbers
    nas = Nas(radius_server)
    ids = {"User_Name": card, "Acct_Session_Id": "L"}
    nas.send("start", 600, **ids, Acct_Session_Time=0)
    nas.send("stop", 0, **ids, Acct_Session_Time=600, Acct_Terminate_Cause="User-Request")
    state = rows(radius_db, "SELECT * FROM sessions"), rows(radius_db, "SELECT id FROM ledger")
    nas.send("interim", 0, **ids, Acct_Session_Time=300)  # held up somewhere for five minutes, no delay said
    nas.send("stop", 0, **ids, Acct_Session_Time=600, Acct_Terminate_Cause="User-Request")
    nas.send("start", 600, **ids, Acct_Session_Time=0)  # its Start, retransmitted last
    assert (rows(radius_db, "SELECT * FROM sessions"), rows(radius_db, "SELECT id FROM ledger")) == state


def test_a_session_time_of_136_years_one_second_after_the_start_is_held_not_billed(
    radius_server: RadiusServer, radius_db: Engine, vault: PinVault
) -> None:
    batch = build_world(radius_db, vault)
    card, accepted = batch.numbers[0], radius_server.login(batch.numbers[0], batch.pins[0], nas_ip=MIKROTIK)
    ids = {"User_Name": card, "Acct_Session_Id": "T", "Class": accepted.one("Class")}
    nas = Nas(radius_server)
    nas.send("start", 0, **ids, Acct_Session_Time=0)
    nas.send("interim", 0, **ids, Acct_Session_Time=0xFFFFFFFF)
    nas.send("interim", 0, **ids, Acct_Session_Time=0xFFFFFFFF)  # a retransmit: held once
    assert charged_by_card(radius_db) == {}
    assert rows(radius_db, "SELECT source, reason, quantity, held, state FROM quarantine") == [
        ("radius", "time-beyond-clock", "seconds", Decimal(0xFFFFFFFF), "held")
    ]
    nas.send("stop", 0, **ids, Acct_Session_Time=1, Acct_Terminate_Cause="User-Request")  # the NAS, honest again
    assert charged_by_card(radius_db) == {card: MINUTE_PRICE}
    assert "not billed (time-beyond-clock, reported 4294967295)" in radius_server.log_text()
    assert_balanced(radius_db)


def test_bytes_beyond_the_line_rate_are_held_and_the_time_is_billed(
    radius_server: RadiusServer, radius_db: Engine, vault: PinVault
) -> None:
    (card,) = build_world(radius_db, vault, count=1, traffic_price=10).numbers  # 0.10 per MB
    nas = Nas(radius_server)
    ids = {"User_Name": card, "Acct_Session_Id": "G"}
    nas.send("start", 60, **ids, Acct_Session_Time=0)
    # 1,000 Gigawords in 60 s: 4.3 TB, where 1 Gbit/s carries 7.5 GB
    nas.send("interim", 0, **ids, Acct_Session_Time=60, Acct_Input_Octets=5, Acct_Input_Gigawords=1000)
    # 2^64 - 1 bytes down: beyond what any counter column holds; answered all the same
    nas.send("stop", 0, **ids, Acct_Session_Time=61, Acct_Output_Octets=0xFFFFFFFF, Acct_Output_Gigawords=0xFFFFFFFF)
    assert charged_by_card(radius_db) == {card: 2 * MINUTE_PRICE}
    assert rows(radius_db, "SELECT reason, quantity, held, reported FROM quarantine ORDER BY id") == [
        ("bytes-beyond-line-rate", "upload", Decimal((1000 << 32) | 5), Decimal((1000 << 32) | 5)),
        ("counter-out-of-range", "download", Decimal(2**64 - 1), Decimal(2**64 - 1)),
    ]
    assert rows(radius_db, "SELECT status, seconds, input_octets, output_octets FROM sessions") == [
        ("closed", 61, 0, 0)
    ]
    assert_balanced(radius_db)


def test_an_admin_releases_or_dismisses_held_usage_once(
    radius_server: RadiusServer, radius_db: Engine, radius_database: str, key_file: object, vault: PinVault
) -> None:
    card_a, card_b = build_world(radius_db, vault, count=2).numbers
    nas = Nas(radius_server)
    for card, session_id in ((card_a, "RA"), (card_b, "RB")):
        nas.send("start", 60, User_Name=card, Acct_Session_Id=session_id, Acct_Session_Time=0)
        nas.send("interim", 0, User_Name=card, Acct_Session_Id=session_id, Acct_Session_Time=660)  # 10 min ahead
    assert charged_by_card(radius_db) == {}
    env = {"HOTSPOT_DATABASE_URL": radius_database, "HOTSPOT_PIN_KEY_FILE": str(key_file), "HOTSPOT_CONFIG": os.devnull}
    runner = CliRunner()

    def hotspotctl(*args: str) -> str:
        result = runner.invoke(cli, list(args), env=env)
        assert result.exit_code == 0, result.output
        return result.output

    held = hotspotctl("quarantine", "list", "--format", "csv")
    assert held.count("time-beyond-clock") == 2 and "Acct-Session-Id 'RA'" in held
    first, second = (row[0] for row in rows(radius_db, "SELECT id FROM quarantine ORDER BY id"))
    assert "0.22 EUR debited" in hotspotctl("quarantine", "release", str(first), "--reason", "confirmed on site")
    hotspotctl("quarantine", "dismiss", str(second), "--reason", "counter glitch")
    again = runner.invoke(cli, ["quarantine", "release", str(first), "--reason", "twice"], env=env)
    assert again.exit_code == 1 and "was released already" in again.output and "Traceback" not in again.output
    assert charged_by_card(radius_db) == {card_a: 11 * MINUTE_PRICE}
    assert rows(radius_db, "SELECT state, resolution_note FROM quarantine ORDER BY id") == [
        ("released", "confirmed on site"),
        ("dismissed", "counter glitch"),
    ]
    assert hotspotctl("quarantine", "list").strip().splitlines()[1:] == []
    assert_balanced(radius_db)


def test_a_wrong_interim_cannot_undo_the_login_it_came_after(
    radius_server: RadiusServer, radius_db: Engine, vault: PinVault
) -> None:
    """A Start that claims its session began before the login that let it in is billed from the login."""
    batch = build_world(radius_db, vault)
    card, accepted = batch.numbers[0], radius_server.login(batch.numbers[0], batch.pins[0], nas_ip=MIKROTIK)
    login_happened_earlier(radius_db, 120)
    ids = {"User_Name": card, "Acct_Session_Id": "W", "Class": accepted.one("Class")}
    Nas(radius_server).send("start", 0, **ids, Acct_Session_Time=86_400)
    assert rows(radius_db, "SELECT seconds FROM sessions") == [(0,)]
    assert rows(radius_db, "SELECT quantity, held FROM quarantine") == [("seconds", Decimal(86_400))]
