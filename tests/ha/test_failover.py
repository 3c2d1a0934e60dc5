"""The primary dies under load (tests/ha): Patroni promotes the synchronous standby, radiusd follows it by
its multi-host address, and nothing acknowledged is lost or billed twice.

A real etcd and two Patroni-managed PostgreSQL 15 nodes (rlm_hotspot/devha.py), a real radiusd with
rlm_hotspot whose database URL lists both nodes with target_session_attrs=read-write. The test is the
NAS: it logs fresh cards in at a steady rate and sends Interim-Updates of open sessions, retransmitting
each until it is acknowledged (as a NAS does), while it kills the primary's postmaster, waits for the old
primary to rejoin as a standby, fails back the same way, and switches over as planned. Then every
session is stopped and each card's charge is compared with the usage the test reported.
"""

from __future__ import annotations

import math
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pyrad.client import Timeout
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from rlm_hotspot.db import migrate
from rlm_hotspot.devha import HaLab
from rlm_hotspot.pins import PinVault
from rlm_hotspot.radius import config as radconf
from tests.db.helpers import assert_ledger_balanced
from tests.e2e.radius_harness import (
    NAS_BY_VENDOR,
    RadiusServer,
    build_world,
    login_happened_earlier,
    shared_dir,
    start_radiusd,
    write_settings,
)

pytestmark = pytest.mark.e2e
MIKROTIK = NAS_BY_VENDOR["mikrotik"]
OPEN_SESSIONS = 20  # each gets an Interim-Update in turn, STEP_S more each time
STEP_S = 10
BEGUN_S = 86_400  # the open sessions began a day ago: what they report stays below the wall clock
LOGIN_EVERY_S = 0.2
LOGINS = 400  # fresh cards for the logins under load (more than the run needs)
ANSWER_WITHIN_S = 1.0
BACK_WITHIN_S = 20.0
SWITCH_WAIT_S = 60.0


@pytest.fixture(scope="module")
def lab() -> Iterator[HaLab]:
    missing = [name for name in ("patroni", "etcd", radconf.RADIUSD) if shutil.which(name) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (apt-get install patroni etcd-server freeradius)")
    lab = HaLab.create()
    try:
        lab.start()
        yield lab
    finally:
        lab.stop()


@pytest.fixture(scope="module")
def ha_engine(lab: HaLab) -> Iterator[Engine]:
    engine = create_engine(lab.create_database("hotspot"), pool_pre_ping=True)
    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO installation (currency_code, currency_exponent) VALUES ('EUR', 2)"))
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def ha_radiusd(lab: HaLab, ha_engine: Engine, key_file: Path) -> Iterator[RadiusServer]:
    workdir = shared_dir("hotspot-ha-radius-")
    server = start_radiusd(workdir, write_settings(workdir, lab.url("hotspot"), key_file))
    yield server
    server.stop()
    shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class Answer:
    sent: float  # time.monotonic()
    latency: float | None  # None: no answer within ANSWER_WITHIN_S
    accepted: bool = False


@dataclass
class NasSession:
    number: str
    acct_session_id: str
    token: object
    begun: float  # time.time() at its start (BEGUN_S before the test opened it)
    seconds: int = 0  # the last Interim-Update acknowledged


@dataclass
class Load:
    """The test's NAS: logins and Interim-Updates at a steady rate, in two threads, until `stop`."""

    server: RadiusServer
    cards: list[tuple[str, str]]
    sessions: list[NasSession]
    logins: list[Answer] = field(default_factory=list)
    interims: list[Answer] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=self._log_in), threading.Thread(target=self._account)]
        for thread in threads:
            thread.start()
        return threads

    def _log_in(self) -> None:
        for number, pin in self.cards:
            if self.stop.is_set():
                return
            sent = time.monotonic()
            try:
                reply = self.server.login(number, pin, nas_ip=MIKROTIK)
                self.logins.append(Answer(sent, time.monotonic() - sent, reply.accepted))
            except Timeout:
                self.logins.append(Answer(sent, None))
            time.sleep(max(0.0, LOGIN_EVERY_S - (time.monotonic() - sent)))
        raise AssertionError("the load ran out of fresh cards")

    def _account(self) -> None:
        turn = 0
        while not self.stop.is_set():
            session = self.sessions[turn % len(self.sessions)]
            turn += 1
            reported = session.seconds + STEP_S
            while not self.stop.is_set():  # a NAS retransmits until it is acknowledged
                sent = time.monotonic()
                if interim(self.server, session, reported) is not None:
                    self.interims.append(Answer(sent, time.monotonic() - sent, True))
                    session.seconds = reported
                    break
                self.interims.append(Answer(sent, None))

    def logins_since(self, moment: float) -> list[Answer]:
        return [answer for answer in list(self.logins) if answer.sent >= moment]


def interim(server: RadiusServer, session: NasSession, seconds: int, status: str = "interim") -> object:
    """An Interim-Update (or Stop) saying `seconds` online, sent when they had passed (Acct-Delay-Time)."""
    return server.account(
        status,
        nas_ip=MIKROTIK,
        timeout=ANSWER_WITHIN_S,
        User_Name=session.number,
        Acct_Session_Id=session.acct_session_id,
        Class=session.token,
        Acct_Session_Time=seconds,
        Acct_Delay_Time=int(time.time() - session.begun) - seconds,
    )


def open_sessions(server: RadiusServer, engine: Engine, cards: list[tuple[str, str]]) -> list[NasSession]:
    """Log the cards in and start their sessions, as begun BEGUN_S ago."""
    sessions = []
    for index, (number, pin) in enumerate(cards):
        reply = server.login(number, pin, nas_ip=MIKROTIK)
        assert reply.accepted, reply
        sessions.append(NasSession(number, f"HA{index}", reply.one("Class"), time.time() - BEGUN_S))
    login_happened_earlier(engine, BEGUN_S)
    for session in sessions:
        started = server.account(
            "start",
            nas_ip=MIKROTIK,
            User_Name=session.number,
            Acct_Delay_Time=BEGUN_S,
            Acct_Session_Id=session.acct_session_id,
            Class=session.token,
            Acct_Session_Time=0,
        )
        assert started is not None
    return sessions


@dataclass
class Switch:
    what: str
    at: float
    promoted_s: float  # until Patroni named the new leader
    back_s: float  # until the first login accepted after the event (sent after it)
    refused_s: float  # the longest time no login sent was accepted, around the event


def measure(load: Load, lab: HaLab, what: str, at: float, old: str) -> Switch:
    """The figures of one change of primary that began at `at` (time.monotonic())."""
    lab.wait_for(lambda: lab.leader() not in (None, old), BACK_WITHIN_S, f"{what}: a new leader")
    promoted = time.monotonic()
    deadline = at + BACK_WITHIN_S + 5
    while not any(answer.accepted for answer in load.logins_since(promoted)):
        assert time.monotonic() < deadline, f"{what}: no login accepted within {BACK_WITHIN_S} s"
        time.sleep(0.05)
    back = next(answer for answer in load.logins_since(promoted) if answer.accepted).sent
    refused, run_began = 0.0, None
    for answer in [answer for answer in load.logins if at - 2 <= answer.sent <= back]:
        if not answer.accepted and run_began is None:
            run_began = answer.sent
        elif answer.accepted and run_began is not None:
            refused, run_began = max(refused, answer.sent - run_began), None
    return Switch(what, at, promoted - at, back - at, refused)


def rejoined(lab: HaLab, name: str) -> bool:
    return lab.sync_standby() == name


def test_the_primary_dies_twice_and_switches_over_and_nothing_billed_is_lost(
    lab: HaLab, ha_engine: Engine, ha_radiusd: RadiusServer, vault: PinVault
) -> None:
    batch = build_world(ha_engine, vault, count=OPEN_SESSIONS + LOGINS, face_value=100_000)
    cards = list(zip(batch.numbers, batch.pins, strict=True))
    sessions = open_sessions(ha_radiusd, ha_engine, cards[:OPEN_SESSIONS])
    load = Load(ha_radiusd, cards[OPEN_SESSIONS:], sessions)
    threads = load.start()
    switches: list[Switch] = []
    rejoin_s: list[float] = []
    try:
        time.sleep(3)
        for what in ("failover", "failover back"):
            old = lab.leader()
            assert old is not None
            at = time.monotonic()
            lab.kill_postmaster(old)
            switches.append(measure(load, lab, what, at, old))
            lab.wait_for(lambda old=old: rejoined(lab, old), 90, f"{old} to rejoin as the synchronous standby")
            rejoin_s.append(time.monotonic() - at)
            how = [line for line in lab.node(old).log.read_text().splitlines() if "rewind" in line.lower()]
            print(f"{old} rejoined:", *how[-3:], sep="\n  ")
            time.sleep(2)
        old, candidate = lab.leader(), lab.sync_standby()
        assert old is not None and candidate is not None
        at = time.monotonic()
        status, body = lab.switchover(old, candidate)
        assert status == 200, body
        switches.append(measure(load, lab, "switchover", at, old))
        time.sleep(2)
    finally:
        load.stop.set()
        for thread in threads:
            thread.join(timeout=10)

    for switch in switches:
        print(
            f"{switch.what}: new leader named after {switch.promoted_s:.2f} s, first login accepted "
            f"{switch.back_s:.2f} s after it, logins refused for at most {switch.refused_s:.2f} s"
        )
    print(f"old primary back as the synchronous standby {', '.join(f'{s:.1f}' for s in rejoin_s)} s after the kill")
    print(
        f"{len(load.logins)} logins ({sum(a.accepted for a in load.logins)} accepted), {len(load.interims)} "
        f"interim transmissions ({sum(a.accepted for a in load.interims)} acknowledged)"
    )
    began = load.logins[0].sent
    print("logins refused at (s into the load):", [round(a.sent - began, 1) for a in load.logins if not a.accepted])
    print("events at:", [(s.what, round(s.at - began, 1)) for s in switches])
    unanswered = [a for a in load.logins if a.latency is None or a.latency > ANSWER_WITHIN_S]
    assert unanswered == [], f"{len(unanswered)} logins not answered within {ANSWER_WITHIN_S} s"
    slow_acks = [a for a in load.interims if a.accepted and a.latency is not None and a.latency > ANSWER_WITHIN_S]
    assert slow_acks == []
    for switch in switches:
        assert switch.back_s <= BACK_WITHIN_S, switch
    failovers = [s.refused_s for s in switches if s.what != "switchover"]
    assert switches[-1].refused_s <= max(failovers) + LOGIN_EVERY_S, switches

    for session in sessions:  # the NAS stops each session, retransmitting until acknowledged
        deadline = time.monotonic() + 10
        while interim(ha_radiusd, session, session.seconds, status="stop") is None:
            assert time.monotonic() < deadline, f"the Stop of {session.acct_session_id} was never acknowledged"
    with ha_engine.connect() as conn:
        billed = {
            row.acct_session_id: (row.status, row.seconds, row.charged, row.balance)
            for row in conn.execute(
                text(
                    "SELECT s.acct_session_id, s.status, s.seconds, s.charged, a.balance FROM sessions s "
                    "JOIN accounts a ON a.id = s.account_id WHERE s.acct_session_id LIKE 'HA%'"
                )
            )
        }
    expected = {}
    for session in sessions:
        charge = 2 * math.ceil(session.seconds / 60)  # 1.20/hour per started minute
        expected[session.acct_session_id] = ("closed", session.seconds, charge, 100_000 - charge)
    assert billed == expected
    with Session(ha_engine) as db:
        assert_ledger_balanced(db)
