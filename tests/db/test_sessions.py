"""Logins and metering against the real PostgreSQL: every refusal, exact debits, replays, races."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from rlm_hotspot.core.decisions import Refusal
from rlm_hotspot.db import sessions as sessions_db
from rlm_hotspot.db.ledger import post_entry
from rlm_hotspot.pins import PinVault
from rlm_hotspot.services import cards, catalog
from rlm_hotspot.services.access import (
    LoginRequest,
    Policy,
    RadiusLogin,
    RadiusRefused,
    UnknownPlace,
    decide_login,
    decide_radius_login,
    radius_login_call,
    record_attempt,
)
from rlm_hotspot.services.errors import CardRefused
from rlm_hotspot.services.sessions import (
    AccountingRefused,
    AccountingUpdate,
    close_stale_sessions,
    logout,
    open_portal_session,
    post_heartbeat,
    record_accounting,
)
from rlm_hotspot.services.tariff_cache import TariffCache
from tests.conftest import NOW
from tests.db import factories
from tests.db.helpers import assert_ledger_balanced

NAS_IP = "192.0.2.10"
POLICY = Policy(lockout_attempts=3, lockout_window_s=600, pending_session_ttl_s=120)
GIB = 1 << 30


def radius_world(db: Session, vault: PinVault, *, traffic: bool = False, **batch: object):
    """Tariff 1.20/hour per started minute (and 0.10/MB when `traffic`), a RADIUS hotspot and its NAS."""
    factories.tariff(db, time_increment_seconds=60, **({"traffic_price": 10} if traffic else {}))
    factories.hotspot(db)
    catalog.add_nas(db, name="nas1", hotspot="cafe", ip_address=NAS_IP, secret="s", coa_port=3799, vendor="mikrotik")
    return factories.batch(db, vault, hotspot="cafe", **batch)


def login(db: Session, vault: PinVault, number: str, *, pin: str | None = None, client: str | None = None, now=NOW):
    request = LoginRequest(card_text=number, source="radius", nas_ip=NAS_IP, client=client, pin=pin)
    return decide_login(db, vault, TariffCache(), POLICY, request, now)


def radius_login(
    db: Session,
    vault: PinVault,
    number: str,
    *,
    token: str,
    pin: str | None = None,
    client: str | None = None,
    now=NOW,
    nas_ip: str = NAS_IP,
) -> RadiusLogin:
    """radiusd's path (pin=None: CHAP, radiusd checks it): the first hook call, the virtual server's database
    call (sql/010), the decision; a refusal is recorded as Post-Auth-Type REJECT records it."""
    request = LoginRequest(card_text=number, source="radius", nas_ip=nas_ip, client=client, pin=pin)
    try:
        call = radius_login_call(request, POLICY, token=token, username=number, calling_station_id="aa", now=now)
        result = db.execute(text("SELECT radius_login_json(:call)"), {"call": call}).scalar_one()
        assert len(result) < 1024 and "\\" not in result  # what rlm_python3 hands a hook of it, unescaped
        return decide_radius_login(db, vault, TariffCache(), POLICY, request, result)
    except RadiusRefused as refused:
        refuse(db, refused.record)
        raise


def refuse(db: Session, record: str) -> None:
    db.execute(text("SELECT radius_login_refused(:record)"), {"record": record})


def refusal_of(fn) -> Refusal:  # type: ignore[no-untyped-def]
    with pytest.raises(CardRefused) as refused:
        fn()
    return refused.value.refusal


def test_accept_computes_timeout_from_balance_and_returns_the_pin_for_chap(db: Session, vault: PinVault) -> None:
    batch = radius_world(db, vault)
    grant = login(db, vault, batch.numbers[0])
    assert grant.pin == batch.pins[0]
    assert grant.session_timeout == 250 * 60  # 5.00 at 1.20/hour = 250 started minutes
    assert grant.data_cap is None  # traffic is free in this tariff
    assert (grant.balance, grant.nas_vendor, grant.interim_interval) == (500, "mikrotik", 300)


def test_data_cap_above_4_gib_and_deadline_bounds_the_timeout(db: Session, vault: PinVault) -> None:
    batch = radius_world(db, vault, traffic=True, face_value=100_000, validity=timedelta(hours=1))
    grant = login(db, vault, batch.numbers[0])
    assert grant.data_cap == 1_000_000 * 10_000  # 1000.00 at 0.10 per MB = 10 GB, above 32 bits
    assert grant.data_cap > 4 * GIB
    assert grant.session_timeout == 3600  # the validity period is shorter than what the money buys


@pytest.mark.parametrize("path", ["snapshot", "radius"])
def test_every_refusal_has_its_own_reason(db: Session, vault: PinVault, path: str) -> None:
    """Both login paths (the portal's snapshot, the RADIUS hook's lock-and-reserve) refuse alike."""
    if path == "radius":
        tokens = iter(range(100))

        def login(db: Session, vault: PinVault, number: str, *, pin: str | None = None):  # type: ignore[no-untyped-def]
            return radius_login(db, vault, number, pin=pin, token=f"t{next(tokens)}").grant

    else:
        login = globals()["login"]
    batch = radius_world(db, vault, count=6)
    n = batch.numbers
    assert refusal_of(lambda: login(db, vault, n[0][:-1] + str((int(n[0][-1]) + 1) % 10))) is Refusal.BAD_CARD_NUMBER
    other = factories.batch(db, vault, count=1, series=9000)
    db.execute(text("DELETE FROM cards WHERE number = :n"), {"n": other.numbers[0]})
    assert refusal_of(lambda: login(db, vault, other.numbers[0])) is Refusal.UNKNOWN_CARD
    assert refusal_of(lambda: login(db, vault, n[0], pin="WRONG")) is Refusal.WRONG_PIN
    cards.set_blocked(db, blocked=True, number=n[1])
    assert refusal_of(lambda: login(db, vault, n[1])) is Refusal.BLOCKED
    early = factories.batch(db, vault, count=1, hotspot="cafe", valid_from=NOW + timedelta(days=1))
    assert refusal_of(lambda: login(db, vault, early.numbers[0])) is Refusal.NOT_YET_VALID
    late = factories.batch(db, vault, count=1, hotspot="cafe", use_before=NOW - timedelta(days=1))
    assert refusal_of(lambda: login(db, vault, late.numbers[0])) is Refusal.EXPIRED
    cards.top_up(db, vault, n[2], n[3], batch.pins[3], NOW, pending_ttl_s=120)
    assert refusal_of(lambda: login(db, vault, n[3])) is Refusal.REDEEMED
    account = cards.activate(db, cards.find_card(db, n[4], lock=True), NOW)
    post_entry(db, account_id=account, amount=-500, cause="time", key="drain", now=NOW)
    assert refusal_of(lambda: login(db, vault, n[4])) is Refusal.EXHAUSTED
    factories.hotspot(db, name="station")
    elsewhere = factories.batch(db, vault, count=1, hotspot="station")
    assert refusal_of(lambda: login(db, vault, elsewhere.numbers[0])) is Refusal.WRONG_HOTSPOT
    with pytest.raises(UnknownPlace):
        decide_login(db, vault, TariffCache(), POLICY, LoginRequest(n[0], "radius", nas_ip="198.51.100.1"), NOW)
    if path == "radius":  # every refusal is recorded, and no refused login keeps a slot
        outcomes = db.execute(text("SELECT outcome FROM login_attempts ORDER BY id")).scalars().all()
        assert outcomes == [
            "bad_card_number",
            "unknown_card",
            "wrong_pin",
            "blocked",
            "not_yet_valid",
            "expired",
            "redeemed",
            "exhausted",
            "wrong_hotspot",
        ]
        assert db.execute(text("SELECT count(*) FROM sessions")).scalar_one() == 0
    assert_ledger_balanced(db)


def test_radius_login_takes_the_slot_and_chap_can_give_it_back(db: Session, vault: PinVault) -> None:
    batch = radius_world(db, vault)
    number = batch.numbers[0]
    accepted = radius_login(db, vault, number, token="chap1", client="c1")
    assert accepted.grant.pin == batch.pins[0]  # for chap to check
    later = NOW + timedelta(seconds=1)
    assert refusal_of(lambda: radius_login(db, vault, number, token="chap2", client="c2", now=later)) is (
        Refusal.TOO_MANY_SESSIONS
    )
    assert login_records(db) == [("too_many_sessions", number, "c2", later)]  # the accepted login has none
    refuse(db, accepted.refused_by_chap)  # chap refused the PIN after all: the slot back, a wrong PIN recorded
    assert login_records(db)[1:] == [("wrong_pin", number, "c1", NOW)]
    assert radius_login(db, vault, number, token="chap3", pin=batch.pins[0]).grant.card_number == number
    pending = db.execute(text("SELECT auth_token, status, username FROM sessions")).all()
    assert [tuple(row) for row in pending] == [("chap3", "pending", number)]
    assert len(login_records(db)) == 2  # an accepted login is its session, not a login record (sql/027)


def login_records(db: Session) -> list[tuple[object, ...]]:
    rows = db.execute(text("SELECT outcome, card_number, client, at FROM login_attempts ORDER BY id"))
    return [tuple(row) for row in rows]


def test_chap_cannot_use_a_card_whose_pin_is_only_hashed(db: Session, vault: PinVault) -> None:
    batch = radius_world(db, vault, pin_mode="hashed")
    assert refusal_of(lambda: radius_login(db, vault, batch.numbers[0], token="c")) is Refusal.PAP_ONLY
    assert radius_login(db, vault, batch.numbers[0], token="p", pin=batch.pins[0]).grant.pin is None
    assert db.execute(text("SELECT count(*) FROM sessions")).scalar_one() == 1


def test_lockout_per_card_and_per_client_then_cleared_by_time(db: Session, vault: PinVault) -> None:
    batch = radius_world(db, vault, count=3)
    for _ in range(3):
        record_attempt(
            db,
            card_text=batch.numbers[0],
            client="aa-bb",
            hotspot_id=None,
            source="radius",
            outcome=Refusal.WRONG_PIN,
            now=NOW,
        )
    assert refusal_of(lambda: login(db, vault, batch.numbers[0])) is Refusal.LOCKED_OUT
    assert refusal_of(lambda: login(db, vault, batch.numbers[1], client="aa-bb")) is Refusal.LOCKED_OUT
    assert login(db, vault, batch.numbers[1], client="cc-dd").card_number == batch.numbers[1]
    assert login(db, vault, batch.numbers[0], now=NOW + timedelta(seconds=601)).card_number == batch.numbers[0]


def accounting(db: Session, tariffs: TariffCache, status: str, now, **values):  # type: ignore[no-untyped-def]
    return record_accounting(db, tariffs, AccountingUpdate(status=status, nas_ip=NAS_IP, **values), now)


def test_full_session_bills_exactly_and_replays_change_nothing(db: Session, vault: PinVault) -> None:
    batch = radius_world(db, vault, traffic=True)
    number = batch.numbers[0]
    tariffs = TariffCache()
    radius_login(db, vault, number, token="tok1")
    ids = {"username": number, "acct_session_id": "A1", "token": "tok1"}
    accounting(db, tariffs, "start", NOW, session_time=0, framed_ip="10.1.0.5", **ids)
    assert cards.find_card(db, number).status == "active"
    t1 = NOW + timedelta(seconds=300)
    r1 = accounting(db, tariffs, "interim", t1, session_time=300, input_octets=100_000, output_octets=1_900_000, **ids)
    assert r1.debited == 10 + 20  # 5 started minutes at 1.20/h + 2 MB at 0.10/MB
    assert (
        accounting(
            db, tariffs, "interim", t1, session_time=300, input_octets=100_000, output_octets=1_900_000, **ids
        ).debited
        == 0
    )  # retransmit
    t2 = NOW + timedelta(seconds=601)
    r2 = accounting(
        db,
        tariffs,
        "stop",
        t2,
        session_time=601,
        input_octets=200_000,
        output_octets=2_800_000,
        terminate_cause="User-Request",
        **ids,
    )
    assert r2.debited == 22 - 10 + 30 - 20  # 11 started minutes (0.02 each), 3 MB in all
    late = accounting(
        db, tariffs, "interim", t2, session_time=450, input_octets=150_000, output_octets=2_000_000, **ids
    )
    assert late.debited == 0  # reordered: older counters never produce a negative or double debit
    row = db.execute(text("SELECT status, seconds, charged, terminate_cause FROM sessions")).one()
    assert tuple(row) == ("closed", 601, 52, "User-Request")
    assert cards.find_card(db, number).balance == 500 - 52
    causes = db.execute(text("SELECT cause, amount FROM ledger ORDER BY id")).all()
    assert [tuple(c) for c in causes] == [
        ("card_load", 500),
        ("time", -10),
        ("traffic", -20),
        ("time", -12),
        ("traffic", -10),
    ]
    assert_ledger_balanced(db)


def test_interim_and_stop_without_start_bill_correctly(db: Session, vault: PinVault) -> None:
    batch = radius_world(db, vault)
    tariffs = TariffCache()
    ids = {"username": batch.numbers[0], "acct_session_id": "LOST"}
    accounting(db, tariffs, "interim", NOW, session_time=120, **ids)
    accounting(db, tariffs, "stop", NOW + timedelta(seconds=60), session_time=180, **ids)
    assert cards.find_card(db, batch.numbers[0]).balance == 500 - 6  # 3 minutes at 1.20/h
    started = db.execute(text("SELECT started_at FROM sessions")).scalar_one()
    assert started == NOW - timedelta(seconds=120)
    with pytest.raises(AccountingRefused):
        accounting(db, tariffs, "interim", NOW, session_time=1, acct_session_id="X")
    assert_ledger_balanced(db)


def test_a_packet_without_our_class_finds_its_session_by_nas_and_id_in_the_index(db: Session, vault: PinVault) -> None:
    """The lookup by NAS session id must seek sessions_nas_acct_id on both its keys: with the NAS as an
    IS NOT DISTINCT FROM filter it read the whole index for the id (65 ms a packet with 2 M closed sessions)."""
    batch = radius_world(db, vault)
    tariffs = TariffCache()
    ids = {"username": batch.numbers[0], "acct_session_id": "NOCLASS"}
    accounting(db, tariffs, "start", NOW, session_time=0, **ids)
    assert accounting(db, tariffs, "interim", NOW + timedelta(minutes=5), session_time=300, **ids).debited == 10
    nas_id = db.execute(text("SELECT nas_id FROM sessions")).scalar_one()
    names = db.execute(
        text("SELECT name FROM pg_prepared_statements WHERE name LIKE 'hs_session_by_acct_id%'")
    ).scalars()
    db.execute(text("SET LOCAL enable_seqscan = off"))
    conditions = []
    for name in names:  # parameters: nas_id, acct_session_id, username, card_number
        plan = db.execute(text(f"EXPLAIN EXECUTE {name}(:nas_id, 'NOCLASS', NULL, NULL)"), {"nas_id": nas_id})
        conditions += [line for (line,) in plan if "Index Cond" in line and "acct_session_id" in line]
    assert conditions, "the lookup was not prepared, or reads no index on the NAS session id"
    assert all("nas_id =" in line for line in conditions), conditions


def test_accounting_on_closes_every_live_session_of_that_nas(db: Session, vault: PinVault) -> None:
    batch = radius_world(db, vault, count=3)
    tariffs = TariffCache()
    for i, number in enumerate(batch.numbers):
        accounting(db, tariffs, "start", NOW, username=number, acct_session_id=f"S{i}", session_time=0)
    assert accounting(db, tariffs, "on", NOW + timedelta(minutes=1)).sessions_closed == 3
    assert db.execute(text("SELECT count(*) FROM sessions WHERE status <> 'closed'")).scalar_one() == 0


def test_accounting_on_closes_a_nas_with_more_sessions_than_one_statement_closes(
    db: Session, vault: PinVault, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The close goes by chunks of sessions: every one of them closed at the On, at its last counters, charged
    what its Interim billed, its usage settled; a session begun after the On (a late copy) is left open."""
    monkeypatch.setattr(sessions_db, "NAS_CLOSE_CHUNK", 2)
    batch = radius_world(db, vault, count=6)
    tariffs = TariffCache()
    for i, number in enumerate(batch.numbers[:5]):
        accounting(db, tariffs, "start", NOW, username=number, acct_session_id=f"S{i}", session_time=0)
        accounting(db, tariffs, "interim", NOW + timedelta(seconds=90), username=number, acct_session_id=f"S{i}",
                   session_time=90)  # fmt: skip
    on = NOW + timedelta(minutes=2)
    accounting(db, tariffs, "start", on + timedelta(seconds=1), username=batch.numbers[5], acct_session_id="NEW",
               session_time=0)  # fmt: skip
    assert accounting(db, tariffs, "on", on).sessions_closed == 5
    closed = db.execute(
        text("SELECT acct_session_id, status, stopped_at, seconds, charged, terminate_cause FROM sessions ORDER BY 1")
    ).all()
    assert [tuple(row) for row in closed] == [("NEW", "open", None, 0, 0, None)] + [
        (f"S{i}", "closed", on, 90, 4, "NAS-Reboot") for i in range(5)
    ]
    carried = "SELECT sum(l.seconds) FROM ledger l JOIN sessions s ON s.id = l.session_id WHERE l.cause = 'time' "
    assert db.execute(text(carried + "GROUP BY s.id")).scalars().all() == [90] * 5  # each statement adds up
    assert_ledger_balanced(db)


def test_a_silent_nas_does_not_lock_the_owner_out(db: Session, vault: PinVault) -> None:
    batch = radius_world(db, vault)
    tariffs = TariffCache()
    radius_login(db, vault, batch.numbers[0], token="t")
    assert refusal_of(lambda: login(db, vault, batch.numbers[0])) is Refusal.TOO_MANY_SESSIONS
    accounting(db, tariffs, "start", NOW, username=batch.numbers[0], acct_session_id="Z", token="t")
    later = NOW + timedelta(seconds=2 * 300 + 120 + 1)
    assert login(db, vault, batch.numbers[0], now=later).card_number == batch.numbers[0]
    assert close_stale_sessions(db, POLICY, later) == 1
    assert db.execute(text("SELECT terminate_cause FROM sessions")).scalar_one() == "Stale"


def test_simultaneous_logins_for_one_card_accept_exactly_one(committed: Engine, vault: PinVault) -> None:
    with Session(committed) as db, db.begin():
        batch = radius_world(db, vault)
    number = batch.numbers[0]
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def attempt(i: int) -> None:
        with Session(committed) as db:
            barrier.wait()
            try:
                with db.begin():
                    radius_login(db, vault, number, token=f"t{i}")
                outcomes.append("accepted")
            except CardRefused as exc:
                outcomes.append(exc.refusal.value)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["accepted"] + ["too_many_sessions"] * 3


def test_a_reservation_committed_without_waiting_for_the_disk_holds_the_slot_for_every_connection(
    committed: Engine, vault: PinVault
) -> None:
    """As rlm_sql makes the call: autocommit on a pooled connection. The commit skips the WAL flush
    (sql/027), which changes durability, never visibility: another connection sees the slot taken at once;
    and the setting ends with the call's transaction, so the connection's next statement (a refusal's
    record) commits durably again."""
    with Session(committed) as db, db.begin():
        batch = radius_world(db, vault)
    number = batch.numbers[0]
    with committed.connect() as first, committed.connect() as second:
        for conn in (first, second):
            conn.execution_options(isolation_level="AUTOCOMMIT")
        assert radius_login(first, vault, number, token="async").grant.card_number == number  # type: ignore[arg-type]
        assert first.execute(text("SHOW synchronous_commit")).scalar_one() == "on"
        with pytest.raises(CardRefused) as refused:
            radius_login(second, vault, number, token="second")  # type: ignore[arg-type]
        assert refused.value.refusal is Refusal.TOO_MANY_SESSIONS
    with committed.connect() as conn:
        assert conn.execute(text("SELECT auth_token, status FROM sessions")).all() == [("async", "pending")]


def test_portal_session_bills_per_second_until_logout(db: Session, vault: PinVault) -> None:
    factories.tariff(db, time_price=60, time_unit_seconds=60)  # 0.60 per minute, per second
    hotspot_id = factories.hotspot(db, mode="standalone", traffic_meter="netflow")
    batch = factories.batch(db, vault, hotspot="cafe")
    tariffs = TariffCache()
    status = open_portal_session(
        db,
        vault,
        tariffs,
        POLICY,
        card_text=batch.numbers[0],
        pin=batch.pins[0],
        hotspot_id=hotspot_id,
        client_ip="10.77.0.2",
        client_mac=None,
        now=NOW,
    )
    assert status.open and status.balance == 500 and status.seconds_remaining == 500
    status = post_heartbeat(db, tariffs, status.token, NOW + timedelta(seconds=30))
    assert (status.balance, status.online_seconds, status.seconds_remaining) == (470, 30, 470)
    status = logout(db, tariffs, status.token, NOW + timedelta(seconds=45))
    assert (status.open, status.balance, status.terminate_cause) == (False, 455, "User-Request")
    assert post_heartbeat(db, tariffs, status.token, NOW + timedelta(seconds=90)).balance == 455  # closed stays closed
    with pytest.raises(CardRefused) as wrong:
        open_portal_session(
            db,
            vault,
            tariffs,
            POLICY,
            card_text=batch.numbers[1],
            pin="NOPE",
            hotspot_id=hotspot_id,
            client_ip="10.77.0.3",
            client_mac=None,
            now=NOW,
        )
    assert wrong.value.refusal is Refusal.WRONG_PIN
    outcomes = db.execute(text("SELECT outcome FROM login_attempts ORDER BY id")).scalars().all()
    assert outcomes == ["ok", "wrong_pin"]
    assert_ledger_balanced(db)


def test_a_closed_sessions_statement_adds_up_to_its_counters(db: Session, vault: PinVault) -> None:
    """Updates that move no minor unit post no row; the close settles their seconds and bytes (amount 0)."""
    batch = radius_world(db, vault, traffic=True)  # 0.02 per started minute, 0.10 per MB rounded up
    tariffs = TariffCache()
    ids = {"username": batch.numbers[0], "acct_session_id": "S1"}
    accounting(db, tariffs, "start", NOW, session_time=0, **ids)
    for seconds, octets in ((10, 150_000), (50, 190_000), (70, 210_000)):  # within the first minute and MB...
        accounting(db, tariffs, "interim", NOW + timedelta(seconds=seconds), session_time=seconds,
                   output_octets=octets, **ids)  # fmt: skip
    accounting(db, tariffs, "stop", NOW + timedelta(seconds=75), session_time=75, output_octets=260_000, **ids)
    rows = db.execute(
        text("SELECT cause, amount, seconds, bytes FROM ledger WHERE session_id IS NOT NULL ORDER BY id")
    ).all()
    assert [tuple(row) for row in rows] == [
        ("time", -2, 10, None),  # each row carries its update's increment
        ("traffic", -2, None, 150_000),
        ("time", -2, 20, None),  # the 2nd minute began by 70 s; the update at 50 s moved no minor unit
        ("traffic", -1, None, 20_000),
        ("time", 0, 45, None),  # settled at the close: paid by the rounding up of the rows before
        ("traffic", 0, None, 90_000),
    ]
    stop = NOW + timedelta(seconds=80)  # a late Stop after the close still adds up
    accounting(db, tariffs, "stop", stop, session_time=80, output_octets=270_000, **ids)
    assert db.execute(text("SELECT sum(seconds), sum(bytes) FROM ledger WHERE session_id IS NOT NULL")).one() == (
        80,
        270_000,
    )
    assert_ledger_balanced(db)
