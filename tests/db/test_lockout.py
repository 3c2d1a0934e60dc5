"""The lockout through real PostgreSQL: one name per client on both sides, unknown card numbers count
against the client, and a card's holder is not locked out by wrong PINs others type for its card."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from rlm_hotspot.core.clients import client_identity
from rlm_hotspot.core.decisions import Refusal
from rlm_hotspot.pins import PinVault
from rlm_hotspot.services.access import (
    LoginRequest,
    RadiusLogin,
    RadiusRefused,
    clear_lockout,
    decide_radius_login,
    list_lockouts,
    radius_login_call,
)
from rlm_hotspot.services.tariff_cache import TariffCache
from tests.conftest import NOW
from tests.db.factories import batch as new_batch
from tests.db.test_sessions import NAS_IP, POLICY, login, radius_world, refusal_of, refuse

HOLDER, ATTACKERS = "02-00-00-00-00-0A", ["02-00-00-00-00-B1", "02-00-00-00-00-B2", "02-00-00-00-00-B3"]


@pytest.mark.parametrize(
    ("station", "ip"),
    [
        ("02-00-00-77-00-02", None),
        ("02:00:00:77:00:02", "10.1.0.2"),
        (" AABB.CCDD.EEFF ", None),
        ("aabbccddeeff", None),
        (None, "10.1.0.2"),
        ("10.1.0.2", None),  # a NAS that puts the address in Calling-Station-Id
        ("not-a-mac", "10.1.0.3"),
        ("not-a-mac", None),
        (None, None),
    ],
)
def test_sql_names_a_client_as_python_does(db: Session, station: str | None, ip: str | None) -> None:
    in_sql = db.execute(text("SELECT client_identity(:station, :ip)"), {"station": station, "ip": ip}).scalar_one()
    assert in_sql == client_identity(station, ip)


def radius(db: Session, vault: PinVault, number: str, pin: str | None, station: str, token: str) -> RadiusLogin:
    """radiusd's path, from a device whose Calling-Station-Id is `station` (a refusal is recorded)."""
    request = LoginRequest(number, "radius", nas_ip=NAS_IP, client=client_identity(station, None), pin=pin)
    call = radius_login_call(request, POLICY, token=token, username=number, calling_station_id=station, now=NOW)
    result = db.execute(text("SELECT radius_login_json(:call)"), {"call": call}).scalar_one()
    try:
        return decide_radius_login(db, vault, TariffCache(), POLICY, request, result)
    except RadiusRefused as refused:
        refuse(db, refused.record)
        raise


def test_unknown_card_numbers_count_against_the_client(db: Session, vault: PinVault) -> None:
    batch = radius_world(db, vault, count=2)
    guessed = new_batch(db, vault, count=POLICY.lockout_attempts, series=9000)  # well-formed, then unknown
    db.execute(text("DELETE FROM cards WHERE number = ANY(:n)"), {"n": guessed.numbers})
    typo = batch.numbers[1][:-1] + str((int(batch.numbers[1][-1]) + 1) % 10)
    guesser = ATTACKERS[0]
    assert refusal_of(lambda: radius(db, vault, typo, "x", guesser, "t0")) is Refusal.BAD_CARD_NUMBER  # not counted
    for i, number in enumerate(guessed.numbers):
        assert refusal_of(lambda: radius(db, vault, number, "x", guesser, f"u{i}")) is Refusal.UNKNOWN_CARD  # noqa: B023
    real, pin = batch.numbers[0], batch.pins[0]
    assert refusal_of(lambda: radius(db, vault, real, pin, guesser, "t1")) is Refusal.LOCKED_OUT
    # the portal's pre-check names the guesser the same way, whatever the spelling of its MAC
    same_device = client_identity("02:00:00:00:00:b1", "10.1.0.9")
    assert refusal_of(lambda: login(db, vault, real, pin=pin, client=same_device)) is Refusal.LOCKED_OUT
    assert radius(db, vault, real, pin, ATTACKERS[1], "t2").grant.card_number == real
    listed = {(row["kind"], row["subject"], row["failures"]) for row in list_lockouts(db, POLICY, NOW)}
    assert listed == {("client", "02:00:00:00:00:b1", POLICY.lockout_attempts)}
    assert clear_lockout(db, NOW, client=guesser) == "client 02:00:00:00:00:b1"
    assert list_lockouts(db, POLICY, NOW) == []


def test_wrong_pins_for_a_card_do_not_lock_out_its_holder(db: Session, vault: PinVault) -> None:
    batch = radius_world(db, vault, count=1)
    number, pin = batch.numbers[0], batch.pins[0]
    radius(db, vault, number, pin, HOLDER, "holder1")  # the guest's live session (awaiting its Start)
    for i, attacker in enumerate(ATTACKERS):  # one wrong PIN each: no client is locked, the card is
        assert refusal_of(lambda: radius(db, vault, number, "WRONG", attacker, f"a{i}")) is Refusal.WRONG_PIN  # noqa: B023
    stranger = "02-00-00-00-00-C1"
    assert refusal_of(lambda: radius(db, vault, number, pin, stranger, "s1")) is Refusal.LOCKED_OUT
    assert refusal_of(lambda: login(db, vault, number, pin=pin, client=client_identity(stranger, None))) is (
        Refusal.LOCKED_OUT
    )
    # the holder's session lives on; its device is told the card is in use (by itself), not locked out
    assert db.execute(text("SELECT status FROM sessions WHERE auth_token = 'holder1'")).scalar_one() == "pending"
    assert refusal_of(lambda: radius(db, vault, number, pin, HOLDER, "holder2")) is Refusal.TOO_MANY_SESSIONS
    db.execute(text("UPDATE sessions SET status = 'closed', stopped_at = started_at"))  # it ends
    assert login(db, vault, number, pin=pin, client=client_identity(HOLDER, None)).card_number == number
    later = NOW + timedelta(seconds=POLICY.lockout_window_s + 1)
    assert login(db, vault, number, pin=pin, client=client_identity(stranger, None), now=later).card_number == number
    assert radius(db, vault, number, pin, HOLDER, "holder3").grant.card_number == number  # logs in again


def test_accepted_logins_leave_no_record_and_the_lockout_still_counts_wrong_pins(db: Session, vault: PinVault) -> None:
    """sql/027: an accepted RADIUS login writes its pending session only; the wrong PINs around it count."""
    batch = radius_world(db, vault, count=2)
    number, pin = batch.numbers[0], batch.pins[0]
    attacker = ATTACKERS[0]
    for i in range(POLICY.lockout_attempts - 1):
        assert refusal_of(lambda: radius(db, vault, number, "WRONG", attacker, f"w{i}")) is Refusal.WRONG_PIN  # noqa: B023
    assert radius(db, vault, number, pin, ATTACKERS[1], "ok1").grant.card_number == number
    outcomes = db.execute(text("SELECT outcome FROM login_attempts")).scalars().all()
    assert outcomes == ["wrong_pin"] * (POLICY.lockout_attempts - 1)
    assert db.execute(text("SELECT auth_token FROM sessions")).scalars().all() == ["ok1"]
    assert refusal_of(lambda: radius(db, vault, number, "WRONG", attacker, "w-last")) is Refusal.WRONG_PIN
    assert refusal_of(lambda: radius(db, vault, number, pin, ATTACKERS[2], "ok2")) is Refusal.LOCKED_OUT
    assert db.execute(text("SELECT auth_token FROM sessions")).scalars().all() == ["ok1"]
