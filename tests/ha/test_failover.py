"""The primary dies under load (tests/ha): Patroni promotes the synchronous standby, every node follows it
by its multi-host address, and nothing acknowledged is lost or billed twice.

A real etcd and two Patroni-managed PostgreSQL 15 nodes (devtools/ha.py); a real radiusd with
rlm_hotspot, a portal (`hotspotctl portal run`, gunicorn) and a flow importer (`hotspotctl flows run`),
each with a database URL that lists both nodes with target_session_attrs=read-write. The test is the
NAS, the guests' browsers and the collector: it logs fresh cards in at a steady rate, sends Interim-Updates
of open sessions (retransmitting each until it is acknowledged, as a NAS does), sends portal heartbeats
and drops spool files into the importer's spool, while it kills the primary's postmaster, waits for the
old primary to rejoin as a standby, fails back the same way, and switches over as planned. Then every
charge is compared with what the test reported: each RADIUS session's with its Interim-Updates, each
portal session's with its acknowledged heartbeats, each flow guest's with the bytes of the files.
"""

from __future__ import annotations

import http.client
import itertools
import math
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pyrad.client import Timeout
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from devtools.ha import HaLab
from devtools.processes import Processes
from rlm_hotspot.db import migrate
from rlm_hotspot.pins import PinVault
from rlm_hotspot.radius import config as radconf
from tests.adversarial.test_netflow_poison_loop import spool_file
from tests.db import factories
from tests.db.helpers import assert_ledger_balanced
from tests.db.test_flow_world import HOTSPOT as FLOW_HOTSPOT
from tests.db.test_flow_world import flow_world, open_session, price, traffic_debited
from tests.e2e.radius_harness import (
    NAS_BY_VENDOR,
    RadiusServer,
    build_world,
    login_happened_earlier,
    shared_dir,
    start_radiusd,
    write_settings,
)
from tests.e2e.test_portal_gunicorn import logged_in_cookie
from tests.multinode.conftest import HOTSPOTCTL, Route, free_tcp_port, node_environment, wait_for_tcp
from tests.portal.conftest import SECRET, World

MIKROTIK = NAS_BY_VENDOR["mikrotik"]
OPEN_SESSIONS = 20  # each gets an Interim-Update in turn, STEP_S more each time
STEP_S = 10
BEGUN_S = 86_400  # the open sessions began a day ago: what they report stays below the wall clock
LOGIN_EVERY_S = 0.2
LOGINS = 400  # fresh cards for the logins under load (more than the run needs)
ANSWER_WITHIN_S = 1.0
BACK_WITHIN_S = 20.0
SWITCH_WAIT_S = 60.0
PORTAL_HOTSPOT = "lounge"
PORTAL_GUESTS = 3
BEAT_EVERY_S = 0.2  # heartbeats of the portal guests in turn
FLOW_BYTES = {"10.1.0.11": 100_000, "10.1.0.12": 30_000}  # what every spool file gives each flow guest
FILE_EVERY_S = 0.5
FLOW_FILES = 230  # one bin (a minute) each, all in the past: the flow guests' sessions began 5 hours ago


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


@dataclass
class Answer:
    sent: float  # time.monotonic()
    latency: float | None  # None: no answer within ANSWER_WITHIN_S
    accepted: bool = False
    status: int | None = None  # a heartbeat's HTTP status


@dataclass
class NasSession:
    number: str
    acct_session_id: str
    token: object
    begun: float  # time.time() at its start (BEGUN_S before the test opened it)
    seconds: int = 0  # the last Interim-Update acknowledged


@dataclass
class PortalGuest:
    token: str
    cookie: str
    acknowledged: datetime | None = None  # when its last heartbeat was answered 200


@dataclass
class Load:
    """The test's NAS, browsers and collector: logins, Interim-Updates, heartbeats and spool files at a
    steady rate, one thread each, until `stop`."""

    server: RadiusServer
    cards: list[tuple[str, str]]
    sessions: list[NasSession]
    portal_port: int
    guests: list[PortalGuest]
    spool: Path
    first_bin: datetime
    logins: list[Answer] = field(default_factory=list)
    interims: list[Answer] = field(default_factory=list)
    beats: list[Answer] = field(default_factory=list)
    files: int = 0  # spool files written
    stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=target) for target in (self._log_in, self._account, self._beat, self._feed)]
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

    def _beat(self) -> None:
        turn = 0
        while not self.stop.is_set():
            guest = self.guests[turn % len(self.guests)]
            turn += 1
            sent = time.monotonic()
            status = heartbeat(self.portal_port, guest.cookie)
            latency = time.monotonic() - sent
            if status == 200:
                guest.acknowledged = datetime.now(UTC)
            self.beats.append(Answer(sent, latency if status else None, status == 200, status))
            time.sleep(max(0.0, BEAT_EVERY_S - latency))

    def _feed(self) -> None:
        for index in range(FLOW_FILES):
            if self.stop.is_set():
                return
            drop_spool_file(self.spool, self.first_bin + timedelta(minutes=index))
            self.files += 1
            time.sleep(FILE_EVERY_S)
        raise AssertionError("the load ran out of bins for spool files")

    def logins_since(self, moment: float) -> list[Answer]:
        return [answer for answer in list(self.logins) if answer.sent >= moment]


def heartbeat(port: int, cookie: str) -> int | None:
    """A guest's status page beating: the HTTP status, None if the portal did not answer within 5 s."""
    headers = {"Cookie": f"hotspot_portal={cookie}", "X-CSRF-Token": "csrf-1", "Content-Length": "0"}
    browser = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        browser.request("POST", "/heartbeat", headers=headers)
        response = browser.getresponse()
        response.read()
        return response.status
    except OSError:
        return None
    finally:
        browser.close()


def drop_spool_file(spool: Path, bin_start: datetime) -> None:
    """One closed block of download records for the bin (FLOW_BYTES), moved into the spool whole, as the
    collector's files are complete once the importer may read them (it runs with --settle 0s)."""
    staging = spool.parent / "staging"
    staging.mkdir(exist_ok=True)
    written = spool_file(staging, "down", bin_start, list(FLOW_BYTES.items()))
    written.replace(spool / written.name)


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
    beats_written_s: float  # until a heartbeat was written to the database after the event
    flows_imported_s: float  # until a spool file was imported after the event


@dataclass(frozen=True)
class Mark:
    """Where the heartbeat writes and the flow import stood when an event began."""

    wall: datetime
    last_batch: int

    @classmethod
    def now(cls, engine: Engine) -> Mark:
        with engine.connect() as conn:
            last_batch = conn.execute(text("SELECT coalesce(max(id), 0) FROM flow_batches")).scalar_one()
        return cls(datetime.now(UTC), last_batch)

    def passed(self, engine: Engine) -> tuple[bool, bool]:
        """(a heartbeat written since, a spool file imported since); (False, False) while there is no primary."""
        try:
            with engine.connect() as conn:
                row = conn.execute(
                    text(
                        "SELECT (SELECT max(last_heartbeat_at) FROM sessions WHERE source = 'portal') > :wall AS beat,"
                        " EXISTS (SELECT FROM flow_batches WHERE id > :batch) AS imported"
                    ),
                    {"wall": self.wall, "batch": self.last_batch},
                ).one()
        except OperationalError:
            return False, False
        return bool(row.beat), bool(row.imported)


def measure(load: Load, lab: HaLab, engine: Engine, what: str, at: float, old: str, mark: Mark) -> Switch:
    """The figures of one change of primary that began at `at` (time.monotonic()) with `old` leading."""
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
    resumed: dict[int, float] = {}
    while len(resumed) < 2:
        assert time.monotonic() < deadline, f"{what}: heartbeats written / flows imported: {resumed}"
        for index, passed in enumerate(mark.passed(engine)):
            if passed:
                resumed.setdefault(index, time.monotonic() - at)
        time.sleep(0.05)
    return Switch(what, at, promoted - at, back - at, refused, resumed[0], resumed[1])


def rejoined(lab: HaLab, name: str) -> bool:
    return lab.sync_standby() == name


def portal_world(engine: Engine, vault: PinVault) -> World:
    """A standalone hotspot with heartbeats, billed 1 minor unit a second, and cards for PORTAL_GUESTS."""
    with Session(engine) as db, db.begin():
        factories.tariff(db, "per-second", time_price=60, time_unit_seconds=60)
        hotspot_id = factories.hotspot(db, PORTAL_HOTSPOT, "per-second", mode="standalone", traffic_meter="netflow",
                                       heartbeat="on", heartbeat_timeout=300)  # fmt: skip
        cards = factories.batch(db, vault, count=PORTAL_GUESTS, hotspot=PORTAL_HOTSPOT, now=datetime.now(UTC))
    return World(hotspot_id, cards)


def flow_guests(engine: Engine, vault: PinVault) -> dict[str, int]:
    """A NetFlow hotspot and a session per FLOW_BYTES address, begun 5 hours ago: address -> account."""
    began = datetime.now(UTC) - timedelta(hours=5)
    with Session(engine) as db, db.begin():
        numbers = flow_world(db, vault, night_band=False)
        return {ip: open_session(db, number, ip, started_at=began).account_id
                for number, ip in zip(numbers, FLOW_BYTES, strict=False)}  # fmt: skip


def start_portal_and_importer(processes: Processes, url: str, key_file: Path, spool: Path, logs: Path) -> int:
    """`hotspotctl portal run` and `hotspotctl flows run` on the cluster's multi-host URL; the portal's port."""
    port = free_tcp_port()
    env = node_environment(Route(), url, key_file, HOTSPOT_PORTAL_SECRET_KEY=SECRET,
                           HOTSPOT_PORTAL_URL=f"http://127.0.0.1:{port}/")  # fmt: skip
    portal = processes.start(
        [HOTSPOTCTL, "portal", "run", "--hotspot", PORTAL_HOTSPOT, "--bind", f"127.0.0.1:{port}", "--plain-http",
         "--workers", "1"],
        logs / "portal.log", signal.SIGTERM, env,
    )  # fmt: skip
    processes.start(
        [HOTSPOTCTL, "flows", "run", "--hotspot", FLOW_HOTSPOT, "--spool", str(spool), "--settle", "0s",
         "--interval", "1s"],
        logs / "importer.log", signal.SIGINT, node_environment(Route(), url, key_file),
    )  # fmt: skip
    wait_for_tcp(port, portal, logs / "portal.log")
    return port


@dataclass
class Stack:
    """One test's database on the cluster, with its radiusd, portal and importer, and the load on them."""

    engine: Engine
    radiusd: RadiusServer
    load: Load
    flow_accounts: dict[str, int]
    nodes: Processes
    logs: Path

    def run(self, events: Callable[[], None]) -> None:
        """The load for 3 s, then `events` under it, 2 s more; then the portal and importer are stopped (the
        portal's writer writes what it holds at SIGTERM)."""
        threads = self.load.start()
        try:
            time.sleep(3)
            events()
            time.sleep(2)
        finally:
            self.load.stop.set()
            for thread in threads:
                thread.join(timeout=10)
        time.sleep(3)  # the importer's last scans
        self.nodes.stop_all()

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")


_databases = itertools.count(1)


@pytest.fixture
def stack(lab: HaLab, vault: PinVault, key_file: Path, tmp_path: Path) -> Iterator[Stack]:
    lab.wait_for(lambda: lab.leader() is not None and lab.sync_standby() is not None, 90, "a synchronous standby")
    url = lab.create_database(f"hotspot{next(_databases)}")
    engine = create_engine(url, pool_pre_ping=True)
    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO installation (currency_code, currency_exponent) VALUES ('EUR', 2)"))
    radius_dir = shared_dir("hotspot-ha-radius-")
    radiusd = start_radiusd(radius_dir, write_settings(radius_dir, url, key_file))
    nodes = Processes()
    try:
        batch = build_world(engine, vault, count=OPEN_SESSIONS + LOGINS, face_value=100_000)
        cards = list(zip(batch.numbers, batch.pins, strict=True))
        sessions = open_sessions(radiusd, engine, cards[:OPEN_SESSIONS])
        lounge = portal_world(engine, vault)
        guests = [PortalGuest(*logged_in_cookie(engine, vault, lounge, card)) for card in range(PORTAL_GUESTS)]
        flow_accounts = flow_guests(engine, vault)
        spool = tmp_path / "spool"
        spool.mkdir()
        first_bin = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=4)
        port = start_portal_and_importer(nodes, url, key_file, spool, tmp_path)
        load = Load(radiusd, cards[OPEN_SESSIONS:], sessions, port, guests, spool, first_bin)
        yield Stack(engine, radiusd, load, flow_accounts, nodes, tmp_path)
    finally:
        nodes.stop_all()
        radiusd.stop()
        shutil.rmtree(radius_dir, ignore_errors=True)
        engine.dispose()


def assert_billed_as_reported(stack: Stack) -> None:
    """Stop every RADIUS session; then each charge is what the load reported, each spool file was imported
    once, and every balance is its ledger."""
    load, engine = stack.load, stack.engine
    for session in load.sessions:  # the NAS stops each session, retransmitting until acknowledged
        deadline = time.monotonic() + 10
        while interim(stack.radiusd, session, session.seconds, status="stop") is None:
            assert time.monotonic() < deadline, f"the Stop of {session.acct_session_id} was never acknowledged"
    with engine.connect() as conn:
        billed = {
            row.acct_session_id: (row.status, row.seconds, row.charged, row.balance)
            for row in conn.execute(
                text(
                    "SELECT s.acct_session_id, s.status, s.seconds, s.charged, a.balance FROM sessions s "
                    "JOIN accounts a ON a.id = s.account_id WHERE s.acct_session_id LIKE 'HA%'"
                )
            )
        }
        portal_billed = {
            row.auth_token: row
            for row in conn.execute(
                text(
                    "SELECT s.auth_token, s.started_at, s.seconds, s.charged, "
                    "(SELECT -sum(amount) FROM ledger l WHERE l.account_id = s.account_id AND l.cause = 'time') "
                    "AS debited FROM sessions s WHERE s.source = 'portal' AND s.auth_token NOT LIKE 'flow-test-%'"
                )
            )
        }
        batches = conn.execute(text("SELECT count(*), count(DISTINCT name) FROM flow_batches")).one()
    expected = {}
    for session in load.sessions:
        charge = 2 * math.ceil(session.seconds / 60)  # 1.20/hour per started minute
        expected[session.acct_session_id] = ("closed", session.seconds, charge, 100_000 - charge)
    assert billed == expected

    assert sorted(portal_billed) == sorted(guest.token for guest in load.guests)
    for guest in load.guests:  # billed by the second, once, up to its last acknowledged heartbeat
        row = portal_billed[guest.token]
        assert guest.acknowledged is not None
        assert abs(row.seconds - (guest.acknowledged - row.started_at).total_seconds()) <= 1.5, (row, guest)
        assert row.charged == row.seconds == row.debited, row

    importer_log = stack.log("importer")
    assert tuple(batches) == (load.files, load.files), "a spool file was skipped or imported twice"
    assert len(list((load.spool / "done").iterdir())) == load.files, importer_log[-3000:]
    assert list(load.spool.glob("*.json")) == [], "a spool file was left behind"
    assert not (load.spool / "failed").exists(), importer_log[-3000:]
    assert "Traceback" not in importer_log, importer_log
    with Session(engine) as db:
        for ip, account in stack.flow_accounts.items():
            assert traffic_debited(db, account) == price(load.files * FLOW_BYTES[ip]), ip
        assert_ledger_balanced(db)


def print_load(load: Load) -> None:
    print(
        f"{len(load.logins)} logins ({sum(a.accepted for a in load.logins)} accepted), {len(load.interims)} "
        f"interim transmissions ({sum(a.accepted for a in load.interims)} acknowledged), {len(load.beats)} "
        f"heartbeats (slowest answer {max(a.latency or 0 for a in load.beats):.2f} s), {load.files} spool files"
    )
    began = load.logins[0].sent
    print("logins refused at (s into the load):", [round(a.sent - began, 1) for a in load.logins if not a.accepted])
    refused_beats = [(round(a.sent - began, 1), a.status, round(a.latency or -1, 2)) for a in load.beats
                     if not a.accepted]  # fmt: skip
    print("heartbeats refused at (s into the load, status, answered after):", refused_beats)


def test_the_primary_dies_twice_and_switches_over_and_nothing_billed_is_lost(lab: HaLab, stack: Stack) -> None:
    load, engine = stack.load, stack.engine
    switches: list[Switch] = []
    rejoin_s: list[float] = []

    def events() -> None:
        for what in ("failover", "failover back"):
            old = lab.leader()
            assert old is not None
            mark = Mark.now(engine)
            at = time.monotonic()
            lab.kill_postmaster(old)
            switches.append(measure(load, lab, engine, what, at, old, mark))
            lab.wait_for(lambda old=old: rejoined(lab, old), 90, f"{old} to rejoin as the synchronous standby")
            rejoin_s.append(time.monotonic() - at)
            how = [line for line in lab.node(old).log.read_text().splitlines() if "rewind" in line.lower()]
            print(f"{old} rejoined:", *how[-3:], sep="\n  ")
            time.sleep(2)
        old, candidate = lab.leader(), lab.sync_standby()
        assert old is not None and candidate is not None
        mark = Mark.now(engine)
        at = time.monotonic()
        status, body = lab.switchover(old, candidate)
        assert status == 200, body
        switches.append(measure(load, lab, engine, "switchover", at, old, mark))

    stack.run(events)
    for switch in switches:
        print(
            f"{switch.what}: new leader named after {switch.promoted_s:.2f} s, first login accepted "
            f"{switch.back_s:.2f} s after it, logins refused for at most {switch.refused_s:.2f} s, heartbeats "
            f"written again after {switch.beats_written_s:.2f} s, spool files imported again after "
            f"{switch.flows_imported_s:.2f} s"
        )
    print(f"old primary back as the synchronous standby {', '.join(f'{s:.1f}' for s in rejoin_s)} s after the kill")
    print_load(load)
    print("events at:", [(s.what, round(s.at - load.logins[0].sent, 1)) for s in switches])
    unanswered = [a for a in load.logins if a.latency is None or a.latency > ANSWER_WITHIN_S]
    assert unanswered == [], f"{len(unanswered)} logins not answered within {ANSWER_WITHIN_S} s"
    for answer in load.logins:  # refused only while an event had left no primary to log in on
        if not answer.accepted:
            assert any(s.at - ANSWER_WITHIN_S <= answer.sent <= s.at + s.back_s for s in switches), answer
    slow_acks = [a for a in load.interims if a.accepted and a.latency is not None and a.latency > ANSWER_WITHIN_S]
    assert slow_acks == []
    for answer in load.beats:  # a 503 at once while there is no primary; the page beats again
        assert answer.latency is not None and answer.latency <= ANSWER_WITHIN_S, answer
        if not answer.accepted:
            assert answer.status == 503, answer
            assert any(s.at <= answer.sent <= s.at + s.beats_written_s + 1 for s in switches), answer
    for switch in switches:
        assert switch.back_s <= BACK_WITHIN_S, switch
        assert max(switch.beats_written_s, switch.flows_imported_s) <= BACK_WITHIN_S, switch
    failovers = [s.refused_s for s in switches if s.what != "switchover"]
    assert switches[-1].refused_s <= max(failovers) + LOGIN_EVERY_S, switches
    assert_billed_as_reported(stack)


def synchronous_standby_names(engine: Engine) -> str | None:
    """The primary's setting (None while it cannot be read): whom a commit waits for."""
    try:
        with engine.connect() as conn:
            return str(conn.execute(text("SHOW synchronous_standby_names")).scalar_one())
    except OperationalError:
        return None


def test_the_standby_host_is_lost_and_service_goes_on(lab: HaLab, stack: Stack) -> None:
    """synchronous_mode without synchronous_mode_strict: when the synchronous standby is gone, the leader's
    Patroni empties synchronous_standby_names and commits go on unreplicated, instead of waiting forever;
    the standby that comes back is made synchronous again."""
    load = stack.load
    leader, standby = lab.leader(), lab.sync_standby()
    assert leader is not None and standby is not None
    timings: dict[str, float] = {}

    def events() -> None:
        at = time.monotonic()
        lab.lose_host(standby)
        lab.wait_for(lambda: synchronous_standby_names(stack.engine) == "", BACK_WITHIN_S, "asynchronous commits")
        timings["asynchronous"] = time.monotonic() - at
        timings["lost at"] = at
        time.sleep(5)  # service on the primary alone
        back = time.monotonic()
        lab.restore_host(standby)
        lab.wait_for(lambda: rejoined(lab, standby), 90, f"{standby} to rejoin as the synchronous standby")
        timings["rejoined"] = time.monotonic() - back

    stack.run(events)
    lost = timings["lost at"]
    around = [a for a in load.logins if lost - 1 <= a.sent]
    slowest = max(a.latency if a.latency is not None else math.inf for a in around)
    print(
        f"standby host lost: the primary's synchronous_standby_names was empty after "
        f"{timings['asynchronous']:.2f} s; slowest login answer after the loss {slowest:.2f} s; the host back "
        f"as the synchronous standby {timings['rejoined']:.1f} s after it restarted"
    )
    print_load(load)
    print("lost at (s into the load):", round(lost - load.logins[0].sent, 1))
    assert lab.leader() == leader, "losing the standby must not move the primary"
    unanswered = [a for a in load.logins if a.latency is None or a.latency > ANSWER_WITHIN_S]
    assert unanswered == [], f"{len(unanswered)} logins not answered within {ANSWER_WITHIN_S} s"
    assert all(a.accepted for a in load.logins), "a login was refused while the primary was up"
    assert all(a.accepted for a in load.beats), "a heartbeat was refused while the primary was up"
    assert_billed_as_reported(stack)
