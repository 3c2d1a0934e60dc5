"""Requests carrying text that is not UTF-8, through a real radiusd (rlm_python3 3.2.1 would fail the
call before the module runs): every one is answered, logged or billed, directly and through the buffer."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from rlm_hotspot.pins import PinVault
from tests.db.helpers import assert_ledger_balanced
from tests.e2e.conftest import wait_until
from tests.e2e.radius_harness import NAS_BY_VENDOR, RadiusServer, build_world, login_happened_earlier

MIKROTIK = NAS_BY_VENDOR["mikrotik"]
LATIN1_NAME = "José".encode("latin-1")
NOT_BILLED = "accounting: packet acknowledged but not billed: accounting for 'Jos\\\\xe9'"


@pytest.fixture(params=["direct", "buffered"])
def server(request: pytest.FixtureRequest) -> RadiusServer:
    return request.getfixturevalue("radius_server" if request.param == "direct" else "buffered_radius_server")


def logged(server: RadiusServer, line: str) -> int:
    """How often radiusd, or the importer billing its buffer, logged `line`."""
    return server.log_text().count(line) + server.importer_log_text().count(line)


def sessions(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        sql = """SELECT acct_session_id, calling_station_id, status, seconds, charged FROM sessions
                 WHERE acct_session_id IS NOT NULL"""
        return [tuple(row) for row in conn.execute(text(sql))]


def test_a_login_whose_user_name_is_not_utf8_is_rejected_with_a_message(server: RadiusServer) -> None:
    refused = server.login(LATIN1_NAME, "ANYPIN1234", nas_ip=MIKROTIK)
    assert not refused.accepted
    assert refused.attributes["Reply-Message"] == ["card number 'Jos\\xe9' must contain digits only"]


def test_a_valid_card_logs_in_whatever_other_text_is_not_utf8(
    server: RadiusServer, radius_db: Engine, vault: PinVault
) -> None:
    batch = build_world(radius_db, vault, count=3)
    stray = {"Calling_Station_Id": b"02-00-00-00-00-\xff", "NAS_Identifier": b"caf\xe9"}  # the latter unread
    assert server.login(batch.numbers[0], batch.pins[0], nas_ip=MIKROTIK, **stray).accepted
    assert server.login(batch.numbers[1], batch.pins[1], chap=True, nas_ip=MIKROTIK, **stray).accepted
    wrong = server.login(batch.numbers[2], batch.pins[2] + "\xff", nas_ip=MIKROTIK, **stray)
    assert wrong.attributes.get("Reply-Message") == ["Wrong PIN."] and not wrong.accepted


def test_accounting_with_text_that_is_not_utf8_is_answered_and_billed_or_logged(
    server: RadiusServer, radius_db: Engine, vault: PinVault
) -> None:
    batch = build_world(radius_db, vault, count=1)
    accepted = server.login(batch.numbers[0], batch.pins[0], nas_ip=MIKROTIK)
    login_happened_earlier(radius_db, 180)  # the session is reported at its end, each packet's delay said
    session = {
        "User_Name": batch.numbers[0],
        "Class": accepted.one("Class"),
        "Acct_Session_Id": b"S\xe9-1",
        "Calling_Station_Id": b"02-00-00-00-00-\xff",
        "NAS_Identifier": b"caf\xe9",  # read by nobody, dropped with the rest
    }
    unknown = {"User_Name": LATIN1_NAME, "Acct_Session_Id": "L1"}
    for status, seconds in (("start", 0), ("interim", 120), ("stop", 180)):
        when = {"Acct_Session_Time": seconds, "Acct_Delay_Time": 180 - seconds}
        assert server.account(status, nas_ip=MIKROTIK, **when, **session) is not None
        assert server.account(status, nas_ip=MIKROTIK, **when, **unknown) is not None
    # 3 started minutes at 1.20/hour, under the session id as the NAS sent it, each stray byte as \xNN
    expected = [("S\\xe9-1", "02-00-00-00-00-\\xff", "closed", 180, 6)]
    wait_until(lambda: sessions(radius_db) == expected, what="the session billed")
    wait_until(lambda: logged(server, NOT_BILLED) >= 3, what="the unknown card's packets logged")
    with Session(radius_db) as db:
        assert_ledger_balanced(db)
