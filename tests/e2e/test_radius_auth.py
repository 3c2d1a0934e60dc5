"""Access-Requests through a real radiusd with rlm_hotspot: PAP, CHAP, every refusal, vendor profiles."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from rlm_hotspot.core.cardcode import damm_digit
from rlm_hotspot.core.decisions import Refusal
from rlm_hotspot.db.ledger import post_entry
from rlm_hotspot.pins import PinVault
from rlm_hotspot.radius.adapter import NOT_CONFIGURED, UNKNOWN_NAS_ADVICE
from rlm_hotspot.services import cards
from tests.db import factories
from tests.e2e.radius_harness import NAS_BY_VENDOR, RadiusServer, Reply, build_world

MIKROTIK = NAS_BY_VENDOR["mikrotik"]
REJECT_MAY_CARRY = {"Reply-Message", "Message-Authenticator"}
GB = 1_000_000_000


def assert_refused(reply: Reply, message: str) -> None:
    """An Access-Reject with exactly this message and nothing else (no leaked session attributes)."""
    assert not reply.accepted
    assert reply.attributes.get("Reply-Message") == [message]
    assert set(reply.attributes) <= REJECT_MAY_CARRY, reply.attributes


def attempts(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT outcome FROM login_attempts ORDER BY id")).scalars())


@pytest.mark.parametrize("chap", [False, True], ids=["pap", "chap"])
def test_accept_and_wrong_pin(radius_server: RadiusServer, radius_db: Engine, vault: PinVault, chap: bool) -> None:
    batch = build_world(radius_db, vault, hotspot={"idle_timeout": 600})
    wrong = radius_server.login(batch.numbers[1], "WRONGPIN", chap=chap, nas_ip=MIKROTIK)
    assert_refused(wrong, "Wrong PIN.")
    accepted = radius_server.login(batch.numbers[0], batch.pins[0], chap=chap, nas_ip=MIKROTIK)
    assert accepted.accepted
    assert accepted.one("Session-Timeout") == 250 * 60  # 5.00 at 1.20/hour, per started minute
    assert (accepted.one("Acct-Interim-Interval"), accepted.one("Idle-Timeout")) == (300, 600)
    token = accepted.one("Class")
    assert isinstance(token, bytes) and token.startswith(b"hs:")
    with radius_db.connect() as conn:
        session = conn.execute(text("SELECT status, auth_token FROM sessions")).one()
    assert tuple(session) == ("pending", token[3:].decode())
    assert attempts(radius_db) == ["wrong_pin"]  # a success is its session, not a login record (sql/027)


def test_card_numbers_are_normalised(radius_server: RadiusServer, radius_db: Engine, vault: PinVault) -> None:
    batch = build_world(radius_db, vault)
    number = batch.numbers[0]
    typed = f"{number[:4]} {number[4:8]}-{number[8:]}"
    assert radius_server.login(typed, batch.pins[0], nas_ip=MIKROTIK).accepted


def test_every_refusal_has_its_own_message(radius_server: RadiusServer, radius_db: Engine, vault: PinVault) -> None:
    now = datetime.now(UTC)
    batch = build_world(radius_db, vault, count=6)
    n, pins = batch.numbers, batch.pins
    with Session(radius_db) as db, db.begin():
        early = factories.batch(db, vault, count=1, hotspot="cafe", now=now, valid_from=now + timedelta(days=1))
        late = factories.batch(db, vault, count=1, hotspot="cafe", now=now, use_before=now - timedelta(days=1))
        factories.hotspot(db, name="station")
        elsewhere = factories.batch(db, vault, count=1, hotspot="station", now=now)
        cards.set_blocked(db, blocked=True, number=n[1])
        cards.top_up(db, vault, n[2], n[3], pins[3], now, pending_ttl_s=120)
        account = cards.activate(db, cards.find_card(db, n[4], lock=True), now)
        post_entry(db, account_id=account, amount=-500, cause="time", key="drain", now=now)
    typo = n[0][:-1] + str((int(n[0][-1]) + 1) % 10)
    unknown = build_unknown_number(n[0])

    def refused(number: str, pin: str, refusal: Refusal, message: str | None = None) -> None:
        assert_refused(radius_server.login(number, pin, nas_ip=MIKROTIK), message or refusal.message)

    refused(typo, pins[0], Refusal.BAD_CARD_NUMBER, f"card number '{typo}' has a typo (check digit)")
    refused(unknown, pins[0], Refusal.UNKNOWN_CARD)
    refused(n[1], pins[1], Refusal.BLOCKED)
    refused(early.numbers[0], early.pins[0], Refusal.NOT_YET_VALID)
    refused(late.numbers[0], late.pins[0], Refusal.EXPIRED)
    refused(n[3], pins[3], Refusal.REDEEMED)
    refused(n[4], pins[4], Refusal.EXHAUSTED)
    refused(elsewhere.numbers[0], elsewhere.pins[0], Refusal.WRONG_HOTSPOT)
    assert radius_server.login(n[5], pins[5], nas_ip=MIKROTIK).accepted
    refused(n[5], pins[5], Refusal.TOO_MANY_SESSIONS)
    assert_refused(radius_server.login(n[0], pins[0], nas_ip="198.51.100.9"), NOT_CONFIGURED)
    assert f"no NAS with address 198.51.100.9 in the database: {UNKNOWN_NAS_ADVICE}" in radius_server.log_text()
    assert attempts(radius_db) == [
        "bad_card_number",
        "unknown_card",
        "blocked",
        "not_yet_valid",
        "expired",
        "redeemed",
        "exhausted",
        "wrong_hotspot",
        "too_many_sessions",
    ]


def build_unknown_number(number: str) -> str:
    """A well-formed number (valid check digit) in an unused series."""
    body = "9999" + number[4:-1]
    return body + damm_digit(body)


@pytest.mark.parametrize("chap_challenge", [True, False], ids=["chap-challenge", "authenticator"])
def test_a_wrong_chap_pin_is_told_before_the_cards_state(
    radius_server: RadiusServer, radius_db: Engine, vault: PinVault, chap_challenge: bool
) -> None:
    """As with PAP: only who knows the PIN learns that a card is in use or blocked, and every wrong PIN
    counts towards the lockout (chap alone checked it after the card's state)."""
    batch = build_world(radius_db, vault, count=2)
    with Session(radius_db) as db, db.begin():
        cards.set_blocked(db, blocked=True, number=batch.numbers[1])

    def login(number: str, pin: str) -> Reply:
        return radius_server.login(number, pin, chap=True, chap_challenge=chap_challenge, nas_ip=MIKROTIK)

    assert login(batch.numbers[0], batch.pins[0]).accepted
    assert_refused(login(batch.numbers[0], "NOPE"), "Wrong PIN.")  # in use
    assert_refused(login(batch.numbers[1], "NOPE"), "Wrong PIN.")  # blocked
    assert_refused(login(batch.numbers[0], batch.pins[0]), Refusal.TOO_MANY_SESSIONS.message)
    assert_refused(login(batch.numbers[1], batch.pins[1]), Refusal.BLOCKED.message)
    assert attempts(radius_db) == ["wrong_pin", "wrong_pin", "too_many_sessions", "blocked"]
    assert_refused(login(batch.numbers[0], "NOPE"), "Wrong PIN.")
    assert_refused(login(batch.numbers[0], "NOPE"), "Wrong PIN.")
    assert_refused(login(batch.numbers[0], batch.pins[0]), Refusal.LOCKED_OUT.message)


def test_wrong_pins_lock_the_card_out(radius_server: RadiusServer, radius_db: Engine, vault: PinVault) -> None:
    batch = build_world(radius_db, vault)
    for chap in (False, True, False):  # the server allows 3 wrong PINs (PAP or CHAP alike)
        assert_refused(radius_server.login(batch.numbers[0], "NOPE", chap=chap, nas_ip=MIKROTIK), "Wrong PIN.")
    locked = radius_server.login(batch.numbers[0], batch.pins[0], nas_ip=MIKROTIK)
    assert_refused(locked, Refusal.LOCKED_OUT.message)


def test_hashed_pins_work_with_pap_only(radius_server: RadiusServer, radius_db: Engine, vault: PinVault) -> None:
    batch = build_world(radius_db, vault, pin_mode="hashed")
    assert_refused(
        radius_server.login(batch.numbers[0], batch.pins[0], chap=True, nas_ip=MIKROTIK), Refusal.PAP_ONLY.message
    )
    assert_refused(radius_server.login(batch.numbers[0], "WRONGPIN", nas_ip=MIKROTIK), "Wrong PIN.")
    assert radius_server.login(batch.numbers[0], batch.pins[0], nas_ip=MIKROTIK).accepted


def test_vendor_profiles_with_a_quota_above_4_gib(
    radius_server: RadiusServer, radius_db: Engine, vault: PinVault
) -> None:
    # 1000.00 at 0.10 per MB buys 10 GB; the card is valid for one day from first use
    batch = build_world(radius_db, vault, count=4, traffic_price=10, face_value=100_000, validity=timedelta(days=1))
    cap = 10 * GB
    replies = {
        vendor: radius_server.login(number, pin, nas_ip=NAS_BY_VENDOR[vendor])
        for vendor, number, pin in zip(NAS_BY_VENDOR, batch.numbers, batch.pins, strict=True)
    }
    assert all(reply.accepted for reply in replies.values())
    assert all(reply.one("Session-Timeout") == 86400 for reply in replies.values())  # the validity day
    mikrotik = replies["mikrotik"]
    assert (mikrotik.one("Mikrotik-Total-Limit"), mikrotik.one("Mikrotik-Total-Limit-Gigawords")) == (
        cap & 0xFFFFFFFF,
        cap >> 32,
    )
    assert mikrotik.one("Mikrotik-Rate-Limit") == "1024k/4096k"  # rx (client upload) / tx
    chilli = replies["chilli"]
    octets, gigawords = chilli.one("ChilliSpot-Max-Total-Octets"), chilli.one("ChilliSpot-Max-Total-Gigawords")
    assert octets == 2**32 - 1  # a NAS that ignores gigawords is still capped below the quota
    assert (gigawords << 32) + octets <= cap < ((gigawords + 1) << 32) + octets
    assert (chilli.one("ChilliSpot-Bandwidth-Max-Up"), chilli.one("ChilliSpot-Bandwidth-Max-Down")) == (1024, 4096)
    wispr = replies["wispr"]
    assert (wispr.one("WISPr-Bandwidth-Max-Up"), wispr.one("WISPr-Bandwidth-Max-Down")) == (1_024_000, 4_096_000)
    terminate = datetime.fromisoformat(str(wispr.one("WISPr-Session-Terminate-Time")))
    assert abs(terminate - (datetime.now(UTC) + timedelta(days=1))) < timedelta(seconds=10)
    common = {"Session-Timeout", "Acct-Interim-Interval", "Class"}
    assert set(replies["generic"].attributes) == common
    assert set(wispr.attributes) == common | {
        "WISPr-Bandwidth-Max-Up",
        "WISPr-Bandwidth-Max-Down",
        "WISPr-Session-Terminate-Time",
    }


def test_simultaneous_logins_accept_exactly_one(
    radius_server: RadiusServer, radius_db: Engine, vault: PinVault
) -> None:
    batch = build_world(radius_db, vault)
    barrier = threading.Barrier(4)
    replies: list[Reply] = []

    def login(chap: bool) -> None:
        barrier.wait()
        # queued on the card's row lock: a busy machine may take seconds (the count is tested, not latency)
        replies.append(radius_server.login(batch.numbers[0], batch.pins[0], chap=chap, nas_ip=MIKROTIK, timeout=10))

    threads = [threading.Thread(target=login, args=(i % 2 == 0,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.accepted for r in replies) == [False, False, False, True]
    for reply in replies:
        if not reply.accepted:
            assert_refused(reply, Refusal.TOO_MANY_SESSIONS.message)
    with radius_db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM sessions")).scalar_one() == 1


def test_a_request_without_credentials_is_rejected(radius_server: RadiusServer, radius_db: Engine) -> None:
    client = radius_server.client()
    request = client.CreateAuthPacket(User_Name="00019116814", NAS_IP_Address=MIKROTIK)
    reply = client.SendPacket(request)
    assert reply.code == 3 and list(reply["Reply-Message"]) == ["Invalid login request."]
    assert "malformed Access-Request rejected: the Access-Request carries neither" in radius_server.log_text()
