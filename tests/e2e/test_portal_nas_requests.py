"""RADIUS mode: what a guest does on the portal reaches the NAS at once, through `hotspotctl worker`.

The portal (Flask test client) logs the guest in through a CoovaChilli handoff, the NAS's
Accounting-Start opens the session, then a logout queues a Disconnect-Request and a top-up a CoA-Request
with the new limits; one real worker cycle sends them over UDP to the stand-in NAS.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from portal import create_app
from rlm_hotspot.nas.coa import send_disconnect
from rlm_hotspot.pins import PinVault
from rlm_hotspot.services import catalog
from rlm_hotspot.services.access import Policy
from rlm_hotspot.services.sessions import AccountingUpdate, record_accounting
from rlm_hotspot.services.tariff_cache import TariffCache
from rlm_hotspot.services.uam import set_nas_uam
from rlm_hotspot.worker.cycle import Worker
from tests.e2e.standin_nas import StandInNas
from tests.gates.labdb import transaction
from tests.portal.conftest import Clock, World, csrf_of, login, make_world, portal_settings
from tests.uam_nas import sign_chilli_url

NAS_SECRET = "coa-secret"
UAM_SECRET = "uam-s3cret"
CHALLENGE = "00112233445566778899aabbccddeeff"
CLIENT_IP = "10.1.0.5"


@pytest.fixture
def nas() -> Iterator[StandInNas]:
    stand_in = StandInNas(NAS_SECRET, {"ACCT1": ("ack", None)})
    yield stand_in
    stand_in.close()


@pytest.fixture
def world(committed: Engine, vault: PinVault, nas: StandInNas) -> World:
    """A RADIUS hotspot without heartbeats (only the guest's logout ends the session early) and its NAS."""
    world = make_world(committed, vault, mode="radius", traffic_meter="radius", heartbeat="off")
    with Session(committed) as db, db.begin():
        catalog.add_nas(
            db, name="chilli1", hotspot="cafe", ip_address="127.0.0.1", secret=NAS_SECRET, coa_port=nas.port,
            vendor="chilli",
        )  # fmt: skip
        set_nas_uam(db, "chilli1", uam_secret=UAM_SECRET, uam_login_url=None)
    return world


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(database_url: str, key_file: Path, clock: Clock, world: World) -> Iterator[Flask]:
    app = create_app(portal_settings(database_url, key_file), clock=clock)
    yield app
    app.extensions["hotspot_portal"].close()


def logged_in_guest(app: Flask, world: World, committed: Engine, clock: Clock) -> FlaskClient:
    """Through the CoovaChilli handoff; the NAS then opens the session with its Accounting-Start."""
    client = app.test_client()
    redirect = sign_chilli_url(
        f"http://localhost/?res=notyet&uamip=10.1.0.1&uamport=3990&challenge={CHALLENGE}&ip={CLIENT_IP}&nasid=chilli1",
        UAM_SECRET,
    )
    client.get(redirect.removeprefix("http://localhost"))
    number = world.cards.numbers[0]
    assert login(client, number, world.cards.pins[0]).headers["Location"].startswith("http://10.1.0.1:3990/logon?")
    start = AccountingUpdate(
        status="start", nas_ip="127.0.0.1", username=number, acct_session_id="ACCT1", session_time=0,
        framed_ip=CLIENT_IP,
    )  # fmt: skip
    with Session(committed) as db, db.begin():
        record_accounting(db, TariffCache(), start, clock())
    assert "You are online" in client.get("/status").get_data(as_text=True)
    return client


def worker_cycle(engine: Engine, clock: Clock) -> None:
    Worker(
        transaction=lambda: transaction(engine),
        policy=Policy(),
        close_gate=lambda ip, mac: None,
        send=partial(send_disconnect, timeout_s=0.2),
        clock=clock,
    ).run_cycle()


def queue(engine: Engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text("SELECT reason, attempts, outcome FROM disconnects ORDER BY id"))]


def online_for(seconds: int, world: World, committed: Engine, clock: Clock) -> None:
    """`seconds` later, the NAS's Interim-Update bills the guest's time online."""
    clock.advance(seconds)
    interim = AccountingUpdate(
        status="interim", nas_ip="127.0.0.1", username=world.cards.numbers[0], acct_session_id="ACCT1",
        session_time=seconds, framed_ip=CLIENT_IP,
    )  # fmt: skip
    with Session(committed) as db, db.begin():
        record_accounting(db, TariffCache(), interim, clock())


def top_up_with_the_second_card(client: FlaskClient, world: World) -> None:
    top_up = {"card": world.cards.numbers[1], "pin": world.cards.pins[1], "csrf_token": csrf_of(client, "/status")}
    assert client.post("/topup", data=top_up).status_code == 303


def test_logout_on_the_portal_disconnects_the_guest_at_the_nas(
    app: Flask, world: World, committed: Engine, clock: Clock, nas: StandInNas
) -> None:
    client = logged_in_guest(app, world, committed, clock)
    clock.advance(60)
    response = client.post("/logout", data={"csrf_token": csrf_of(client, "/status")})
    assert response.status_code == 303 and response.headers["Location"] == "/"
    assert queue(committed) == [("logout", 0, None)]

    worker_cycle(committed, clock)
    (request,) = nas.requests_for("ACCT1")
    assert request["code"] == 40 and request["User-Name"] == world.cards.numbers[0]  # Disconnect-Request
    assert request["Framed-IP-Address"] == CLIENT_IP
    assert queue(committed) == [("logout", 1, "ack")]  # the NAS's Accounting-Stop closes the session
    worker_cycle(committed, clock)
    assert len(nas.requests_for("ACCT1")) == 1  # asked once


def test_a_top_up_sends_the_nas_the_new_limits_in_a_coa(
    app: Flask, world: World, committed: Engine, clock: Clock, nas: StandInNas
) -> None:
    client = logged_in_guest(app, world, committed, clock)  # 5.00 at 0.60 per minute: 500 s
    online_for(30, world, committed, clock)  # 30 s billed: 4.70 left, 470 s
    top_up_with_the_second_card(client, world)
    assert queue(committed) == [("topup", 0, None)]

    worker_cycle(committed, clock)
    (request,) = nas.requests_for("ACCT1")
    assert request["code"] == 43  # CoA-Request
    assert request["Session-Timeout"] == 30 + 970  # from the session's start: 30 s used, 9.70 buys 970 s more
    assert request["Acct-Interim-Interval"] == 300  # every limit restated: CoovaChilli resets missing ones
    assert "Class" not in request
    assert queue(committed) == [("topup", 1, "ack")]
    with committed.connect() as conn:  # the CoA does not stand in the way of a later Disconnect
        assert conn.execute(text("SELECT status FROM sessions")).scalar_one() == "open"


def test_a_top_up_while_the_nas_has_not_yet_cut_the_exhausted_session_sends_the_new_limits_instead(
    app: Flask, world: World, committed: Engine, clock: Clock, nas: StandInNas
) -> None:
    client = logged_in_guest(app, world, committed, clock)  # 5.00 at 0.60 per minute: 500 s
    online_for(510, world, committed, clock)  # the balance is gone
    nas.script["ACCT1"] = ("drop", None)  # the NAS does not answer (busy, rebooting...)
    worker_cycle(committed, clock)
    assert queue(committed) == [("exhausted", 1, "timeout")]  # pending: asked again after 15 s
    disconnects = len(nas.requests_for("ACCT1"))  # (retransmitted within the attempt)

    top_up_with_the_second_card(client, world)
    nas.script["ACCT1"] = ("ack", None)
    clock.advance(20)
    worker_cycle(committed, clock)
    (coa,) = nas.requests_for("ACCT1")[disconnects:]  # no second Disconnect: a CoA with the new limits
    assert coa["code"] == 43
    assert coa["Session-Timeout"] == 510 + 490  # 5.00 - 5.10 + 5.00 = 4.90 buys 490 s more
    assert queue(committed) == [("exhausted", 1, "timeout"), ("topup", 1, "ack")]
    with committed.connect() as conn:
        assert conn.execute(text("SELECT status FROM sessions")).scalar_one() == "open"
