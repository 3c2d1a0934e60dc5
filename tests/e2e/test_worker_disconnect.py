"""The worker's Disconnect-Requests over real UDP to a stand-in NAS on 127.0.0.1 (tests/e2e/standin_nas.py)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from urllib.request import urlopen

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from rlm_hotspot.db.ledger import post_entry
from rlm_hotspot.metrics import serve
from rlm_hotspot.nas.coa import send_disconnect
from rlm_hotspot.pins import PinVault
from rlm_hotspot.services import cards, catalog
from rlm_hotspot.services.access import Policy
from rlm_hotspot.services.sessions import AccountingUpdate, record_accounting
from rlm_hotspot.services.tariff_cache import TariffCache
from rlm_hotspot.worker.cycle import Worker
from tests.conftest import NOW
from tests.db import factories
from tests.e2e.radius_harness import RadiusServer, login_happened_earlier
from tests.e2e.standin_nas import StandInNas

SECRET = "coa-secret"
LATER = NOW + timedelta(minutes=5)


@pytest.fixture
def nas() -> Iterator[StandInNas]:
    stand_in = StandInNas(SECRET, {"ACK1": ("ack", None), "NAK1": ("nak", 503), "MUTE": ("drop", None)})
    yield stand_in
    stand_in.close()


@contextmanager
def unit_of_work(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session, session.begin():
        yield session


def exhausted_sessions(engine: Engine, vault: PinVault, nas_port: int, nas_secret: str) -> dict[str, int]:
    """Three open RADIUS sessions at a NAS on 127.0.0.1 whose accounts are drained."""
    ids: dict[str, int] = {}
    with unit_of_work(engine) as db:
        factories.tariff(db, time_increment_seconds=60)
        factories.hotspot(db, heartbeat="off")
        catalog.add_nas(
            db,
            name="standin",
            hotspot="cafe",
            ip_address="127.0.0.1",
            secret=nas_secret,
            coa_port=nas_port,
            vendor="chilli",
        )
        batch = factories.batch(db, vault, count=3, hotspot="cafe")
        for number, acct_id in zip(batch.numbers, ("ACK1", "NAK1", "MUTE"), strict=True):
            update = AccountingUpdate(
                status="start",
                nas_ip="127.0.0.1",
                username=number,
                acct_session_id=acct_id,
                session_time=0,
                framed_ip="10.1.0.7",
            )
            ids[acct_id] = record_accounting(db, TariffCache(), update, LATER).session_id  # type: ignore[assignment]
            card = cards.find_card(db, number)
            post_entry(db, account_id=card.account_id, amount=-500, cause="adjustment", key=f"d:{number}", now=LATER)  # type: ignore[arg-type]
    return ids


def outcome(engine: Engine, session_id: int) -> tuple:
    with unit_of_work(engine) as db:
        row = db.execute(
            text(
                "SELECT d.attempts, d.outcome, d.error_cause, d.done_at IS NOT NULL, s.status FROM disconnects d "
                "JOIN sessions s ON s.id = d.session_id WHERE d.session_id = :id ORDER BY d.id DESC LIMIT 1"
            ),
            {"id": session_id},
        ).one()
    return tuple(row)


def worker_on(engine: Engine, clock: list[datetime]) -> Worker:
    return Worker(
        transaction=lambda: unit_of_work(engine),
        policy=Policy(),
        close_gate=lambda ip, mac: None,
        send=partial(send_disconnect, timeout_s=0.2),
        clock=lambda: clock[0],
    )


def test_disconnect_ack_nak_and_silence_over_udp(committed: Engine, vault: PinVault, nas: StandInNas) -> None:
    ids = exhausted_sessions(committed, vault, nas.port, SECRET)
    clock = [LATER]
    worker = worker_on(committed, clock)
    worker.run_cycle()

    (ack,) = nas.requests_for("ACK1")
    with unit_of_work(committed) as db:
        card_number = db.execute(
            text("SELECT c.number FROM sessions s JOIN cards c ON c.id = s.card_id WHERE s.id = :id"),
            {"id": ids["ACK1"]},
        ).scalar_one()
    assert ack["User-Name"] == card_number
    assert (ack["NAS-IP-Address"], ack["Framed-IP-Address"]) == ("127.0.0.1", "10.1.0.7")
    assert ack["Event-Timestamp"] == int(LATER.timestamp())
    assert nas.dropped_unverified == 0  # authenticator and Message-Authenticator verified with the secret
    assert outcome(committed, ids["ACK1"]) == (1, "ack", None, True, "open")  # the NAS's Stop will close it
    assert outcome(committed, ids["NAK1"]) == (1, "nak", 503, True, "closed")  # the NAS has no such session
    assert outcome(committed, ids["MUTE"]) == (1, "timeout", None, False, "open")
    mute = nas.requests_for("MUTE")
    assert len(mute) == 3 and len({r["id"] for r in mute}) == 1  # one request, retransmitted 3 times

    for wait in (15, 60):  # later cycles retry after the back-off, then give up
        clock[0] += timedelta(seconds=wait)
        worker.run_cycle()
    assert len(nas.requests_for("MUTE")) == 9
    assert outcome(committed, ids["MUTE"]) == (3, "timeout", None, True, "open")
    assert len(nas.requests_for("ACK1")) == 1


def test_the_worker_metrics_port_counts_cuts_nas_answers_and_held_usage(
    committed: Engine, vault: PinVault, nas: StandInNas
) -> None:
    exhausted_sessions(committed, vault, nas.port, SECRET)
    with unit_of_work(committed) as db:
        db.execute(
            text(
                "INSERT INTO quarantine (source, reason, quantity, held, identity, received_at, idempotency_key) "
                "VALUES ('radius', 'bytes-beyond-line-rate', 'download', 5000, 'p1', :at, 'q1')"
            ),
            {"at": LATER},
        )
    worker = worker_on(committed, [LATER])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = serve(worker.metrics.registry, port)
    try:
        worker.run_cycle()
        scraped = urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        server.shutdown()

    for line in (
        'hotspot_worker_cuts_total{reason="exhausted"} 3.0',
        'hotspot_worker_nas_requests_total{outcome="ack",request="disconnect"} 1.0',
        'hotspot_worker_nas_requests_total{outcome="nak",request="disconnect"} 1.0',
        'hotspot_worker_nas_requests_total{outcome="timeout",request="disconnect"} 1.0',
        'hotspot_quarantine_held{reason="bytes-beyond-line-rate",source="radius"} 1.0',
        "hotspot_worker_cycle_seconds_count 1.0",
        'hotspot_worker_cycles_total{outcome="ok"} 1.0',
    ):
        assert line in scraped.splitlines(), line


def test_a_nas_with_another_secret_drops_the_request(committed: Engine, vault: PinVault, nas: StandInNas) -> None:
    ids = exhausted_sessions(committed, vault, nas.port, "not-" + SECRET)
    worker_on(committed, [LATER]).run_cycle()
    assert nas.received == [] and nas.dropped_unverified == 9
    assert outcome(committed, ids["ACK1"]) == (1, "timeout", None, False, "open")


def test_an_interim_update_that_drains_the_balance_gets_the_session_disconnected(
    radius_server: RadiusServer, radius_db: Engine, vault: PinVault, nas: StandInNas
) -> None:
    """The whole chain: radiusd bills an Interim-Update past the balance, the worker sends the Disconnect."""
    with unit_of_work(radius_db) as db:
        factories.tariff(db, time_increment_seconds=60)  # 0.02 per started minute
        factories.hotspot(db, heartbeat="off")
        catalog.add_nas(
            db,
            name="standin",
            hotspot="cafe",
            ip_address="127.0.0.1",
            secret=SECRET,
            coa_port=nas.port,
            vendor="chilli",
        )
        batch = factories.batch(db, vault, count=1, face_value=10, hotspot="cafe", now=datetime.now(UTC))
    number, pin = batch.numbers[0], batch.pins[0]
    accept = radius_server.login(number, pin, nas_ip="127.0.0.1")
    assert accept.accepted
    ids = {
        "User_Name": number,
        "Acct_Session_Id": "ACK1",
        "Class": accept.one("Class"),
        "Framed_IP_Address": "10.1.0.7",
    }
    login_happened_earlier(radius_db, 600)  # the Start comes late: the Interim-Update is sent 600 s after it
    start = {"Acct_Session_Time": 0, "Acct_Delay_Time": 600}
    assert radius_server.account("start", nas_ip="127.0.0.1", **start, **ids) is not None
    assert radius_server.account("interim", nas_ip="127.0.0.1", Acct_Session_Time=600, **ids) is not None

    worker_on(radius_db, [datetime.now(UTC)]).run_cycle()
    (request,) = nas.requests_for("ACK1")
    assert (request["User-Name"], request["Framed-IP-Address"]) == (number, "10.1.0.7")
    with unit_of_work(radius_db) as db:
        row = db.execute(text("SELECT reason, outcome FROM disconnects")).one()
    assert tuple(row) == ("exhausted", "ack")
