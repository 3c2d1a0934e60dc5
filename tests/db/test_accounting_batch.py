"""The importer's batch path bills exactly what the per-packet path (the hook) bills, to the minor unit.

Hypothesis draws accounting sequences as NAS send them on a bad day — Start, Interim and Stop with our
Class or without, retransmits, reordering, counters that jump, restart or exceed the bounds, an
Accounting-On in between — and feeds the same sequence, for two identical sets of cards, once packet by
packet (`bill_packet`) and once in batches of random sizes (`bill_batch`, the importer's path). The
sessions, the ledger and the quarantine must come out the same.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rlm_hotspot.pins import PinVault
from rlm_hotspot.radius.accounting import BatchConflict, bill_batch, bill_packet
from rlm_hotspot.radius.decode import Attributes
from rlm_hotspot.services import catalog
from rlm_hotspot.services.access import RadiusRefused
from rlm_hotspot.services.tariff_cache import NasCache, TariffCache
from tests.conftest import NOW
from tests.db.helpers import assert_ledger_balanced
from tests.db.test_sessions import NAS_IP, radius_login, radius_world

SESSIONS = 3
OTHER_NAS_IP = "192.0.2.11"
STATUS = {"start": "Start", "interim": "Interim-Update", "stop": "Stop", "on": "Accounting-On"}


@st.composite
def packets(draw: st.DrawFn) -> tuple[list[tuple[int, str]], list[tuple[int, dict[str, object]]]]:
    """The logins made first (card, session), then (seconds after NOW it arrives, what it says) for a few
    sessions of a few cards, interleaved."""
    events = []
    logins = []
    for session in range(draw(st.integers(1, SESSIONS))):
        card = draw(st.integers(0, 1))
        natural = draw(st.booleans())  # a NAS that behaves (the lock-free and planned paths), or a bad day
        if natural or draw(st.booleans()):
            logins.append((card, f"S{session}"))
        clock = begun = draw(st.integers(0, 300))
        seconds = octets = 0
        for step in range(draw(st.integers(1, 6))):
            elapsed = draw(st.integers(0, 400))
            clock += elapsed
            if natural:
                kind = "start" if step == 0 else draw(st.sampled_from(["interim", "interim", "stop"]))
                jump = "wall"
                begun = clock if step == 0 else begun
            else:
                kind = draw(st.sampled_from(["start", "interim", "interim", "stop", "on"]))
                jump = draw(st.sampled_from(["wall", "grow", "same", "back", "absurd"]))
            if jump == "wall":  # what a correct NAS reports: online since the first packet, bytes at a sane rate
                seconds, octets = clock - begun, octets + elapsed * draw(st.integers(0, 50_000)) * (step > 0)
            elif jump == "grow":
                seconds, octets = seconds + draw(st.integers(0, 400)), octets + draw(st.integers(0, 10**8))
            elif jump == "back":
                seconds, octets = seconds // 2, octets // 3
            elif jump == "absurd":
                seconds, octets = 2**32 - 1, 2**40
            said = {
                "status": kind, "card": card, "sid": f"S{session}", "class": natural or draw(st.booleans()),
                "seconds": seconds, "octets": octets, "delay": 0 if natural else draw(st.sampled_from([0, 5, 700])),
            }  # fmt: skip
            copies = draw(st.sampled_from([1, 1, 2]))  # a retransmit
            events.extend((clock, said) for _ in range(copies))
    events.sort(key=lambda event: event[0])
    if draw(st.booleans()) and len(events) > 1:  # two packets swapped on the way
        i = draw(st.integers(0, len(events) - 2))
        events[i], events[i + 1] = events[i + 1], events[i]
    return logins, events


def attributes(said: dict[str, object], numbers: list[str], world: str) -> Attributes:
    pairs = [
        ("Acct-Status-Type", STATUS[str(said["status"])]),
        ("NAS-IP-Address", NAS_IP if world == "a" else OTHER_NAS_IP),  # a NAS each: Accounting-On is the NAS's
        ("Acct-Delay-Time", str(said["delay"])),
    ]
    if said["status"] != "on":
        octets = int(str(said["octets"]))
        pairs += [
            ("User-Name", numbers[int(str(said["card"]))]),
            ("Acct-Session-Id", f"{world}{said['sid']}"),
            ("Acct-Session-Time", str(said["seconds"])),
            ("Acct-Input-Octets", str(octets & 0xFFFFFFFF)),
            ("Acct-Input-Gigawords", str(octets >> 32)),
            ("Acct-Output-Octets", str(octets * 3 & 0xFFFFFFFF)),
            ("Acct-Output-Gigawords", str(octets * 3 >> 32)),
        ]
        if said["class"]:
            pairs.append(("Class", f"hs:{world}{said['sid']}"))
    return Attributes(tuple(pairs))


@contextmanager
def savepoint(db: Session) -> Iterator[Session]:
    with db.begin_nested():
        yield db


def outcome_of(db: Session, numbers: list[str]) -> tuple[object, ...]:
    """What the packets left on these cards: sessions, ledger and quarantine, without ids or tokens."""
    cards = {"numbers": numbers}
    sessions = db.execute(
        text(
            "SELECT c.number, s.status, s.seconds, s.input_octets, s.output_octets, s.charged, s.started_at, "
            "s.stopped_at, s.terminate_cause FROM sessions s JOIN cards c ON c.id = s.card_id "
            "WHERE c.number = ANY(:numbers) ORDER BY s.id"
        ),
        cards,
    ).all()
    ledger = db.execute(
        text(
            "SELECT c.number, l.cause, l.amount, l.seconds, l.bytes FROM ledger l JOIN cards c ON c.id = l.card_id "
            "WHERE c.number = ANY(:numbers) ORDER BY l.id"
        ),
        cards,
    ).all()
    held = db.execute(
        text(
            "SELECT c.number, q.quantity, q.held, q.reason FROM quarantine q JOIN sessions s ON s.id = q.session_id "
            "JOIN cards c ON c.id = s.card_id WHERE c.number = ANY(:numbers) ORDER BY q.id"
        ),
        cards,
    ).all()
    rename = {number: f"card{i}" for i, number in enumerate(numbers)}
    return tuple(tuple((rename[row[0]], *row[1:]) for row in rows) for rows in (sessions, ledger, held))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=packets(), cuts=st.lists(st.integers(1, 6), min_size=1, max_size=8))
def test_batches_bill_what_the_hook_bills(db: Session, vault: PinVault, sequence, cuts) -> None:  # type: ignore[no-untyped-def]
    logins, sequence = sequence
    with db.begin_nested() as example:
        batch = radius_world(db, vault, traffic=True, count=4)
        catalog.add_nas(
            db, name="nas2", hotspot="cafe", ip_address=OTHER_NAS_IP, secret="s", coa_port=3799, vendor="mikrotik"
        )
        one_by_one, batched = batch.numbers[:2], batch.numbers[2:]
        for world, numbers, nas_ip in (("a", one_by_one, NAS_IP), ("b", batched, OTHER_NAS_IP)):
            for card, sid in logins:  # a login waiting for its Start, our Class = its token
                with contextlib.suppress(RadiusRefused):  # one slot per card: a second login is refused
                    radius_login(db, vault, numbers[card], token=f"{world}{sid}", nas_ip=nas_ip)
        tariffs, nas = TariffCache(), NasCache()
        for at, said in sequence:
            bill_packet(
                attributes(said, one_by_one, "a"), NOW + timedelta(seconds=at),
                quick=db, careful=lambda: savepoint(db), tariffs=tariffs, nas=nas,
            )  # fmt: skip
        tariffs, nas = TariffCache(), NasCache()
        start = 0
        sizes = iter(cuts * len(sequence))
        while start < len(sequence):
            part = [
                (attributes(said, batched, "b"), NOW + timedelta(seconds=at))
                for at, said in sequence[start : start + next(sizes)]
            ]
            try:
                with db.begin_nested():
                    bill_batch(db, part, careful=lambda: savepoint(db), tariffs=tariffs, nas=nas)
            except (BatchConflict, IntegrityError):  # as the importer does: the batch again, one packet at a time
                for packet, received_at in part:
                    bill_packet(packet, received_at, quick=db, careful=lambda: savepoint(db), tariffs=tariffs, nas=nas)
            start += len(part)
        assert outcome_of(db, batched) == outcome_of(db, one_by_one)
        assert_ledger_balanced(db)
        example.rollback()


def test_interims_of_open_sessions_cost_the_batch_a_fixed_number_of_statements(db: Session, vault: PinVault) -> None:
    batch = radius_world(db, vault, traffic=True, count=20)
    tariffs, nas = TariffCache(ttl=timedelta(hours=1)), NasCache(ttl=timedelta(hours=1))  # read once

    def said(status: str, i: int, seconds: int) -> dict[str, object]:
        return {
            "status": status,
            "card": i,
            "sid": f"S{i}",
            "class": True,
            "seconds": seconds,
            "octets": seconds * 1000,
            "delay": 0,
        }

    starts = [(attributes(said("start", i, 0), batch.numbers, "a"), NOW) for i in range(20)]
    bill_batch(db, starts, careful=lambda: savepoint(db), tariffs=tariffs, nas=nas)
    nas.get(db, NAS_IP, NOW)  # read once per cache (the Starts' may have read it already)
    statements: list[str] = []
    listen = db.connection()
    event.listen(listen, "before_cursor_execute", lambda *args: statements.append(args[2]))
    interims = [
        (attributes(said("interim", i, 60), batch.numbers, "a"), NOW + timedelta(seconds=60)) for i in range(20)
    ]
    stops = [(attributes(said("stop", i, 120), batch.numbers, "a"), NOW + timedelta(seconds=120)) for i in range(20)]
    outcomes = bill_batch(db, interims + stops, careful=lambda: savepoint(db), tariffs=tariffs, nas=nas)
    assert [outcome.result.debited > 0 for outcome in outcomes if outcome.result] == [True] * 40
    # the sessions read, the interims written, the sessions read again, the stops written
    assert len(statements) == 4, [" ".join(s.split())[:60] for s in statements]
    closed = db.execute(text("SELECT count(*) FROM sessions WHERE status = 'closed' AND seconds = 120")).scalar()
    assert closed == 20
    assert_ledger_balanced(db)


def test_a_login_whose_start_reuses_a_live_sessions_id_takes_it_over(db: Session, vault: PinVault) -> None:
    """Found by the property test: the NAS gives a login's session an id another card's live session still
    holds (it lost that one). The older session is over; the login opens (before, its Start failed on the
    unique index, unanswered for ever)."""
    batch = radius_world(db, vault, count=2)
    older, login = batch.numbers
    radius_login(db, vault, login, token="aX")
    said = {"card": 0, "sid": "X", "class": False, "seconds": 0, "octets": 0, "delay": 0}
    for at, packet in (
        (0, attributes({**said, "status": "start"}, [older], "a")),  # no login: opened by its Start
        (60, attributes({**said, "status": "start", "class": True}, [login], "a")),
    ):
        outcome = bill_packet(
            packet,
            NOW + timedelta(seconds=at),
            quick=db,
            careful=lambda: savepoint(db),
            tariffs=TariffCache(),
            nas=NasCache(),
        )
        assert outcome.result is not None
    states = db.execute(
        text(
            "SELECT c.number, s.status, s.terminate_cause FROM sessions s JOIN cards c ON c.id = s.card_id "
            "ORDER BY s.id"
        )
    ).all()
    assert [tuple(row) for row in states] == [(login, "open", None), (older, "closed", "Lost-Service")]


def test_a_batch_start_whose_id_a_live_session_holds_is_left_to_the_per_packet_rules(
    db: Session, vault: PinVault
) -> None:
    """The batch's statement opening Starts leaves out a login whose NAS session id another live session holds
    (looked up once per statement): the batch is billed again packet by packet, where the takeover is decided."""
    batch = radius_world(db, vault, count=2)
    older, login = batch.numbers
    radius_login(db, vault, login, token="aX")
    said = {"card": 0, "sid": "X", "class": False, "seconds": 0, "octets": 0, "delay": 0}
    tariffs, nas = TariffCache(), NasCache()
    bill_packet(
        attributes({**said, "status": "start"}, [older], "a"), NOW,
        quick=db, careful=lambda: savepoint(db), tariffs=tariffs, nas=nas,
    )  # fmt: skip
    start = (attributes({**said, "status": "start", "class": True}, [login], "a"), NOW + timedelta(seconds=60))

    with pytest.raises(BatchConflict), db.begin_nested():
        bill_batch(db, [start], careful=lambda: savepoint(db), tariffs=tariffs, nas=nas)

    statuses = db.execute(text("SELECT c.number, s.status FROM sessions s JOIN cards c ON c.id = s.card_id")).all()
    assert sorted(tuple(row) for row in statuses) == sorted([(older, "open"), (login, "pending")])
