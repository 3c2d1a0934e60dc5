"""Guests on real devices (issue 16, items 6 and 7) through the Flask test client: the same device's
second browser takes its session over with the PIN; the page's lifecycle signals (hidden, visible,
closed) give a hidden page its grace and end a closed one, billed up to the cut; the page says so."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from portal import create_app
from rlm_hotspot.core.heartbeat import CLOSED_PAGE_SLACK_S
from rlm_hotspot.pins import PinVault
from rlm_hotspot.services import catalog
from rlm_hotspot.services.access import Policy
from rlm_hotspot.services.sessions import AccountingUpdate, record_accounting
from rlm_hotspot.services.tariff_cache import TariffCache
from rlm_hotspot.worker.cycle import Worker
from tests.portal.conftest import Clock, World, csrf_of, login, make_world, portal_settings
from tests.portal.test_pages import RU, heartbeat, sql

ANOTHER_DEVICE = "192.0.2.77"


def say(client: FlaskClient, state: str):  # type: ignore[no-untyped-def]
    """What navigator.sendBeacon sends: a form body with the CSRF token, no header."""
    with client.session_transaction() as cookie:
        token = cookie["csrf"]
    return client.post("/page", data={"state": state, "csrf_token": token})


def sessions_of(engine: Engine) -> list[tuple]:
    return [tuple(r) for r in sql(engine, "SELECT id, status, framed_ip::text FROM sessions ORDER BY id")]


def test_the_same_device_in_another_browser_takes_its_session_over_with_the_pin(
    app: Flask, world: World, clock: Clock, committed: Engine
) -> None:
    number, pin = world.cards.numbers[0], world.cards.pins[0]
    captive_window, browser, elsewhere = app.test_client(), app.test_client(), app.test_client()
    elsewhere.environ_base["REMOTE_ADDR"] = ANOTHER_DEVICE
    login(captive_window, number, pin)
    clock.advance(20)
    assert browser.get("/status").headers["Location"] == "/"  # no cookie in the real browser
    assert "Wrong PIN" in login(browser, number, "WRONG").get_data(as_text=True)  # the PIN is still required
    assert sql(committed, "SELECT count(*) FROM login_attempts WHERE outcome = 'wrong_pin'")[0][0] == 1
    taken = login(browser, number, pin)
    assert taken.status_code == 303 and taken.headers["Location"] == "/status"
    page = browser.get("/status").get_data(as_text=True)
    assert "You are online" in page and "€4.80" in page  # the same session, billed on from its start
    assert len(sessions_of(committed)) == 1
    assert heartbeat(captive_window)["open"] is True  # the old window's cookie still works
    refused = login(elsewhere, number, pin).get_data(as_text=True)
    assert "already in use on another device" in refused  # another address owns no session of this card
    assert len(sessions_of(committed)) == 1


def test_another_card_from_the_same_address_still_logs_in_as_usual(app: Flask, world: World, committed: Engine) -> None:
    numbers, pins = world.cards.numbers, world.cards.pins
    login(app.test_client(), numbers[0], pins[0])
    assert "already in use" not in login(app.test_client(), numbers[1], pins[1]).get_data(as_text=True)
    assert [status for _, status, _ in sessions_of(committed)] == ["open", "open"]


def test_a_hidden_page_keeps_its_session_past_the_timeout_and_its_grace_is_billed(
    client: FlaskClient, world: World, clock: Clock
) -> None:
    login(client, world.cards.numbers[0], world.cards.pins[0])
    clock.advance(5)
    assert say(client, "hidden").get_json()["open"] is True  # a sign of life: billed to 5 s
    clock.advance(120)  # frozen in the background: four times the 30 s timeout, within the 600 s grace
    back = say(client, "visible").get_json()
    assert back["open"] is True and back["balance_minor"] == 500 - 125 and back["fields"]["online"] == "2 min 05 s"
    clock.advance(31)  # visible again: the timeout rules once more
    assert "closed or stopped for more than 30 seconds" in client.get("/status").get_data(as_text=True)


def worker_cycle(engine: Engine, clock: Clock, gate: list[str]) -> None:
    """One cycle of `hotspotctl worker` on the portal's database, its gate closing into `gate`."""

    @contextmanager
    def transaction() -> Iterator[Session]:
        with Session(engine) as db, db.begin():
            yield db

    Worker(transaction, Policy(), lambda ip, mac: gate.append(ip), clock=lambda: clock.now).run_cycle()


def test_a_closed_page_ends_its_session_after_the_slack_unless_a_page_speaks_again(
    app: Flask, world: World, clock: Clock, committed: Engine
) -> None:
    reloaded, closed = app.test_client(), app.test_client()
    closed.environ_base["REMOTE_ADDR"] = ANOTHER_DEVICE
    login(reloaded, world.cards.numbers[0], world.cards.pins[0])
    login(closed, world.cards.numbers[1], world.cards.pins[1])
    clock.advance(10)
    say(reloaded, "closed")
    say(closed, "closed")
    clock.advance(2)
    assert heartbeat(reloaded)["open"] is True  # the reloaded page's first heartbeat
    app.extensions["hotspot_portal"].post_rated_heartbeats()  # as the poster does within 0.5 s
    clock.advance(CLOSED_PAGE_SLACK_S - 2)
    gate: list[str] = []
    worker_cycle(committed, clock, gate)
    assert gate == []  # within the slack: a reload's sign of life may still come
    clock.advance(3)
    worker_cycle(committed, clock, gate)
    assert gate == [ANOTHER_DEVICE]
    page = closed.get("/status").get_data(as_text=True)
    assert "this page was closed." in page and "€4.77" in page  # billed to the cut (23 s): the gate was open
    assert "You are online" in reloaded.get("/status").get_data(as_text=True)


def test_a_lifecycle_signal_needs_its_csrf_field_and_a_known_state(client: FlaskClient, world: World) -> None:
    login(client, world.cards.numbers[0], world.cards.pins[0])
    assert client.post("/page", data={"state": "hidden"}).status_code == 400  # no CSRF token
    assert say(client, "asleep").status_code == 400
    assert say(client, "hidden").status_code == 200
    anonymous = client.application.test_client()  # no session: told it has ended
    csrf = csrf_of(anonymous)
    assert anonymous.post("/page", data={"state": "closed", "csrf_token": csrf}).get_json()["open"] is False


def test_the_page_says_what_keeps_the_session_alive_in_english_and_russian(app: Flask, world: World) -> None:
    english, russian = app.test_client(), app.test_client()
    russian.environ_base["REMOTE_ADDR"] = ANOTHER_DEVICE
    login(english, world.cards.numbers[0], world.cards.pins[0])
    russian.post(
        "/login",
        data={"card": world.cards.numbers[1], "pin": world.cards.pins[1], "csrf_token": csrf_of(russian)},
        headers=RU,
    )
    page = english.get("/status").get_data(as_text=True)
    assert "This page keeps you online" in page
    assert "in the background this page keeps your session for at least 10 min 00 s" in page
    assert "log out or close this page: your session ends within seconds" in page
    assert "log in there with the same card number and PIN: you get this session back" in page
    page = russian.get("/status", headers=RU).get_data(as_text=True)
    assert "Эта страница держит вас в сети" in page
    assert "в фоне эта страница сохраняет сеанс не меньше 10 мин 00" in page
    assert 'data-page-state="/page"' in page


def test_at_a_radius_hotspot_the_device_takes_its_nas_session_over_without_a_new_handoff(
    committed: Engine, vault: PinVault, database_url: str, key_file: Path, clock: Clock
) -> None:
    world = make_world(committed, vault, mode="radius", traffic_meter="radius")
    number, pin = world.cards.numbers[0], world.cards.pins[0]
    with Session(committed) as db, db.begin():
        catalog.add_nas(
            db, name="chilli1", hotspot="cafe", ip_address="10.1.0.1", secret="s", coa_port=3799, vendor="chilli"
        )
        update = AccountingUpdate(
            status="start", nas_ip="10.1.0.1", username=number, acct_session_id="a1", framed_ip="127.0.0.1"
        )
        record_accounting(db, TariffCache(), update, clock.now)  # the NAS let the phone in (its CNA window)
    app = create_app(portal_settings(database_url, key_file), clock=clock)
    try:
        browser = app.test_client()  # the phone's real browser: no cookie, the same address
        taken = login(browser, number, pin)
        assert (taken.status_code, taken.headers["Location"]) == (303, "/status")  # no NAS handoff needed
        assert "You are online" in browser.get("/status").get_data(as_text=True)
    finally:
        app.extensions["hotspot_portal"].close()
    assert [status for _, status, _ in sessions_of(committed)] == ["open"]


@pytest.mark.parametrize(
    ("heartbeat", "state", "remaining"),
    [
        ("on", "hidden", 120 - 3),  # the hidden grace, from the page's last word
        ("grace", "hidden", 120),  # the OS's poll is a sign of life: the grace counts from it
        ("on", "closed", CLOSED_PAGE_SLACK_S - 3),  # a closed page ends soon after it said so
        ("grace", "closed", 30),  # the poll spoke after "closed": the timeout rules again
    ],
)
def test_the_captive_api_says_when_the_worker_will_cut(
    committed: Engine,
    vault: PinVault,
    database_url: str,
    key_file: Path,
    clock: Clock,
    heartbeat: str,
    state: str,
    remaining: int,
) -> None:
    """RFC 8908 `seconds-remaining` under the heartbeat rule (30 s timeout, 120 s hidden grace) is the
    moment the worker's cycle ends the session: not cut at it, cut one second after."""
    world = make_world(committed, vault, heartbeat=heartbeat, face_value=50_000)
    with committed.begin() as conn:
        conn.execute(text("UPDATE hotspots SET hidden_grace = 120"))
    app = create_app(portal_settings(database_url, key_file), clock=clock)
    try:
        page = app.test_client()
        login(page, world.cards.numbers[0], world.cards.pins[0])
        clock.advance(5)
        say(page, state)
        clock.advance(3)
        os_poll = json.loads(app.test_client().get("/api/captive").get_data())  # no cookie: the same address
        assert os_poll["seconds-remaining"] == remaining
        app.extensions["hotspot_portal"].post_rated_heartbeats()
        gate: list[str] = []
        clock.advance(remaining)
        worker_cycle(committed, clock, gate)
        assert gate == [] and sessions_of(committed)[0][1] == "open"
        clock.advance(1)
        worker_cycle(committed, clock, gate)
        assert gate == ["127.0.0.1"] and sessions_of(committed)[0][1] == "closed"
    finally:
        app.extensions["hotspot_portal"].close()
