"""The portal's logic through the Flask test client: login and its refusals (en, ru), status and
heartbeat, top-up, logout, the close-the-page rule, RFC 8908, CSRF, headers and errors."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from portal import create_app
from portal.i18n import REFUSAL_MESSAGES
from portal.metrics import EXTENSION
from rlm_hotspot.core.decisions import Refusal
from rlm_hotspot.nas.gates import GateError
from rlm_hotspot.pins import PinVault
from rlm_hotspot.services import cards
from rlm_hotspot.services import portal as portal_service
from tests.conftest import NOW
from tests.db import factories
from tests.db.helpers import assert_ledger_balanced
from tests.portal.conftest import Clock, World, csrf_of, login, make_world, portal_settings

RU = {"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.5"}


def typo(number: str) -> str:
    return number[:-1] + str((int(number[-1]) + 1) % 10)


def heartbeat(client: FlaskClient) -> dict:
    with client.session_transaction() as cookie:
        token = cookie["csrf"]
    response = client.post("/heartbeat", headers={"X-CSRF-Token": token})
    assert response.status_code == 200 and response.mimetype == "application/json"
    return response.get_json()


def sql(engine: Engine, query: str, **params: object):  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.execute(text(query), params).all()


def test_login_opens_a_session_and_the_status_page_shows_the_balance(client: FlaskClient, world: World) -> None:
    response = login(client, world.cards.numbers[0], world.cards.pins[0].lower())  # PINs are not case-sensitive
    assert response.status_code == 303 and response.headers["Location"] == "/status"
    page = client.get("/status").get_data(as_text=True)
    assert "You are online" in page and "€5.00" in page and "8 min 20 s" in page  # 5.00 at 0.60/min
    assert 'http-equiv="refresh" content="10;url=/status?refresh=1"' in page  # no-JS: a third of the 30 s timeout
    assert client.get("/").headers["Location"] == "/status"  # logged in: the start page sends you on


def test_heartbeats_bill_per_second_and_the_page_shows_the_same_numbers(
    client: FlaskClient, world: World, clock: Clock, committed: Engine
) -> None:
    login(client, world.cards.numbers[0], world.cards.pins[0])
    clock.advance(20)
    beat = heartbeat(client)
    assert beat["open"] and beat["balance_minor"] == 480 and beat["seconds_remaining"] == 480
    assert beat["fields"]["balance"] == "€4.80" and beat["fields"]["online"] == "20 s"
    assert beat["next_heartbeat_s"] == 10
    clock.advance(10)
    assert "€4.70" in client.get("/status").get_data(as_text=True)  # a page view is a heartbeat too
    with Session(committed) as db:
        assert_ledger_balanced(db)


@pytest.mark.parametrize("language", ["en", "ru"])
def test_every_refusal_has_its_own_message_in_the_guests_language(
    client: FlaskClient, world: World, committed: Engine, vault: PinVault, language: str
) -> None:
    headers = RU if language == "ru" else {}
    numbers, pins = world.cards.numbers, world.cards.pins
    with Session(committed) as db, db.begin():
        cards.set_blocked(db, blocked=True, number=numbers[1])
        other_hotspot = factories.hotspot(db, name="airport")
        wrong_place = factories.batch(db, vault, count=1, hotspot="airport")
        expired = factories.batch(
            db, vault, count=1, hotspot="cafe", expires_at=NOW - timedelta(days=1), valid_from=NOW - timedelta(days=9)
        )
        early = factories.batch(db, vault, count=1, hotspot="cafe", valid_from=NOW + timedelta(days=1))
        unknown = factories.batch(db, vault, count=1)
        db.execute(text("DELETE FROM cards WHERE number = :n"), {"n": unknown.numbers[0]})
        assert other_hotspot
    cases = {
        Refusal.UNKNOWN_CARD: (unknown.numbers[0], "AAAA"),
        Refusal.BAD_CARD_NUMBER: (typo(numbers[0]), pins[0]),
        Refusal.WRONG_PIN: (numbers[0], "WRONG"),
        Refusal.BLOCKED: (numbers[1], pins[1]),
        Refusal.EXPIRED: (expired.numbers[0], expired.pins[0]),
        Refusal.NOT_YET_VALID: (early.numbers[0], early.pins[0]),
        Refusal.WRONG_HOTSPOT: (wrong_place.numbers[0], wrong_place.pins[0]),
    }
    with client.application.test_request_context(headers=headers):
        expected = {refusal: str(REFUSAL_MESSAGES[refusal]) for refusal in cases}
    if language == "ru":
        assert expected[Refusal.WRONG_PIN].startswith("Неверный PIN-код")
    for refusal, (number, pin) in cases.items():
        page = client.post(
            "/login", data={"card": number, "pin": pin, "csrf_token": csrf_of(client)}, headers=headers
        ).get_data(as_text=True)
        assert expected[refusal] in page, refusal
    assert len(set(expected.values())) == len(expected)


def test_each_refusal_reason_has_a_distinct_portal_message() -> None:
    assert set(REFUSAL_MESSAGES) == set(Refusal)
    assert len({m._args[0] for m in REFUSAL_MESSAGES.values()}) == len(Refusal)


def test_wrong_pins_are_committed_and_lock_the_card_out(client: FlaskClient, world: World, committed: Engine) -> None:
    number, pin = world.cards.numbers[2], world.cards.pins[2]
    for _ in range(5):
        assert "Wrong PIN" in login(client, number, "WRONG").get_data(as_text=True)
    assert sql(committed, "SELECT count(*) FROM login_attempts WHERE outcome = 'wrong_pin'")[0][0] == 5
    page = login(client, number, pin).get_data(as_text=True)  # even the right PIN now
    assert "Too many wrong PINs. Please try again in 15 minutes." in page
    logins = client.application.extensions[EXTENSION].logins
    assert logins.labels(outcome="wrong_pin")._value.get() == 5
    assert logins.labels(outcome="locked_out")._value.get() == 1


def test_in_use_exhausted_and_redeemed_cards_are_refused(app, world: World, committed: Engine, clock: Clock) -> None:
    numbers, pins = world.cards.numbers, world.cards.pins
    first, second = app.test_client(), app.test_client()
    second.environ_base["REMOTE_ADDR"] = "192.0.2.77"  # another device (the same one takes its session over)
    login(first, numbers[0], pins[0])
    assert "already in use on another device" in login(second, numbers[0], pins[0]).get_data(as_text=True)
    with Session(committed) as db, db.begin():
        vault = app.extensions["hotspot_portal"].vault
        cards.top_up(db, vault, numbers[4], numbers[5], pins[5], NOW, pending_ttl_s=120)
    assert "already added to another card" in login(second, numbers[5], pins[5]).get_data(as_text=True)
    for _ in range(50):  # 500 s of heartbeats use up 5.00 at 0.60 per minute
        clock.advance(10)
        beat = heartbeat(first)
    assert beat["balance_minor"] == 0 and beat["seconds_remaining"] == 0
    assert "no money left" in login(second, numbers[0], pins[0]).get_data(as_text=True)


def test_typos_and_empty_fields_are_caught_before_the_database(
    client: FlaskClient, world: World, committed: Engine
) -> None:
    assert "has a typo" in login(client, typo(world.cards.numbers[0]), "X").get_data(as_text=True)
    assert "Please type the PIN." in login(client, world.cards.numbers[0], "  ").get_data(as_text=True)
    assert "Please type the card number." in login(client, "", "X").get_data(as_text=True)
    assert "too long" in login(client, "1" * 200, "X").get_data(as_text=True)
    assert sql(committed, "SELECT count(*) FROM login_attempts")[0][0] == 0  # typos are not guesses


def test_top_up_adds_a_second_card_without_logging_out(
    client: FlaskClient, world: World, committed: Engine, clock: Clock
) -> None:
    numbers, pins = world.cards.numbers, world.cards.pins
    login(client, numbers[0], pins[0])
    for _ in range(3):
        clock.advance(20)
        heartbeat(client)
    status_page = client.get("/status").get_data(as_text=True)
    assert 'name="pin"' not in status_page and 'href="/topup"' in status_page  # its no-JS refresh wipes no card
    token = csrf_of(client, "/topup")
    wrong = client.post("/topup", data={"card": numbers[1], "pin": "NOPE", "csrf_token": token}, follow_redirects=True)
    assert "Wrong PIN" in wrong.get_data(as_text=True) and 'name="pin"' in wrong.get_data(as_text=True)
    done = client.post("/topup", data={"card": numbers[1], "pin": pins[1], "csrf_token": token}, follow_redirects=True)
    page = done.get_data(as_text=True)
    # one balance, the page's own (the confirmation names only the amount added)
    assert "Added €5.00 to your card." in page and "You are online" in page
    assert '<p class="amount" data-field="balance">€9.40</p>' in page
    again = client.post("/topup", data={"card": numbers[1], "pin": pins[1], "csrf_token": token}, follow_redirects=True)
    assert "already added to another card" in again.get_data(as_text=True)
    outcomes = [
        r[0]
        for r in sql(committed, "SELECT outcome FROM login_attempts WHERE card_number = :n ORDER BY id", n=numbers[1])
    ]
    assert outcomes == ["wrong_pin", "ok", "redeemed"]
    with Session(committed) as db:
        assert_ledger_balanced(db)


def test_top_up_is_refused_while_locked_out(client: FlaskClient, world: World) -> None:
    numbers, pins = world.cards.numbers, world.cards.pins
    login(client, numbers[0], pins[0])
    token = csrf_of(client, "/status")
    for _ in range(5):
        client.post("/topup", data={"card": numbers[1], "pin": "NOPE", "csrf_token": token})
    locked = client.post(
        "/topup", data={"card": numbers[1], "pin": pins[1], "csrf_token": token}, follow_redirects=True
    )
    assert "Too many wrong PINs" in locked.get_data(as_text=True)


def test_logout_stops_billing_and_shows_what_is_left(client: FlaskClient, world: World, clock: Clock) -> None:
    login(client, world.cards.numbers[0], world.cards.pins[0])
    clock.advance(20)
    heartbeat(client)
    clock.advance(25)  # billed up to the logout itself
    response = client.post("/logout", data={"csrf_token": csrf_of(client, "/status")}, follow_redirects=True)
    page = response.get_data(as_text=True)
    assert "You have logged out. Left on your card: €4.55." in page and "Connect to the Internet" in page
    assert client.post("/heartbeat", headers={"X-CSRF-Token": csrf_of(client)}).get_json()["open"] is False


def test_a_silent_page_ends_the_session_billed_until_cut(client: FlaskClient, world: World, clock: Clock) -> None:
    login(client, world.cards.numbers[0], world.cards.pins[0])
    clock.advance(10)
    heartbeat(client)
    clock.advance(31)  # longer than the hotspot's 30 s heartbeat timeout, and no worker ran
    page = client.get("/status").get_data(as_text=True)
    assert "Session ended" in page and "closed or stopped for more than 30 seconds" in page
    assert "€4.59" in page  # the gate was open until this page load cut it: 41 s, not the 10 s heard of


def test_status_without_login_goes_to_the_login_page(client: FlaskClient, world: World) -> None:
    assert client.get("/status").headers["Location"] == "/"
    assert client.post("/heartbeat", headers={"X-CSRF-Token": csrf_of(client)}).get_json()["open"] is False


def test_russian_pages_and_the_language_switch(client: FlaskClient, world: World) -> None:
    assert "Подключение к Интернету" in client.get("/", headers=RU).get_data(as_text=True)
    response = client.get("/lang/ru?next=/status")
    assert response.status_code == 303 and response.headers["Location"] == "/status"
    assert "lang=ru" in response.headers["Set-Cookie"] and "HttpOnly" in response.headers["Set-Cookie"]
    login(client, world.cards.numbers[0], world.cards.pins[0])
    page = client.get("/status").get_data(as_text=True)
    assert 'lang="ru"' in page and "Вы в сети" in page and "5,00" in page
    assert client.get("/lang/ru?next=//evil.example/").headers["Location"] == "/"
    assert client.get("/lang/xx").status_code == 404


def test_the_original_url_is_offered_after_login_and_only_if_it_is_http(client: FlaskClient, world: World) -> None:
    client.get("/?url=javascript:alert(1)")
    client.get("/?userurl=http://example.com/news")
    login(client, world.cards.numbers[0], world.cards.pins[0])
    page = client.get("/status").get_data(as_text=True)
    assert 'href="http://example.com/news" target="_blank" rel="noopener noreferrer"' in page
    assert "javascript:" not in page


def test_terms_of_use_must_be_accepted_when_the_hotspot_has_them(
    client: FlaskClient, world: World, committed: Engine, app
) -> None:
    with Session(committed) as db, db.begin():
        portal_service.set_terms_of_use(db, "cafe", "Be nice.")
    app.extensions["hotspot_portal"]._hotspot = None  # the 30 s hotspot cache
    assert 'name="terms"' in client.get("/").get_data(as_text=True)
    assert "Be nice." in client.get("/terms").get_data(as_text=True)
    refused = login(client, world.cards.numbers[0], world.cards.pins[0])
    assert "Please accept the terms of use." in refused.get_data(as_text=True)
    assert login(client, world.cards.numbers[0], world.cards.pins[0], terms="yes").status_code == 303


def test_every_form_needs_its_csrf_token(client: FlaskClient, world: World) -> None:
    number, pin = world.cards.numbers[0], world.cards.pins[0]
    refused = client.post("/login", data={"card": number, "pin": pin})
    assert refused.status_code == 400 and "Please try again" in refused.get_data(as_text=True)
    csrf_of(client)
    assert client.post("/login", data={"card": number, "pin": pin, "csrf_token": "forged"}).status_code == 400
    assert client.post("/heartbeat").status_code == 400
    assert client.post("/logout", data={}).status_code == 400
    assert client.post("/topup", data={"card": number, "pin": pin}).status_code == 400


def test_security_headers_and_cookie_flags(database_url, key_file, clock, world: World) -> None:

    app = create_app(portal_settings(database_url, key_file, cookie_secure=True), clock=clock)
    response = app.test_client().get("/")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    cookie = response.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "<script>" not in response.get_data(as_text=True) and " style=" not in response.get_data(as_text=True)
    app.extensions["hotspot_portal"].close()


def test_the_pin_never_appears_in_a_page_or_a_url(client: FlaskClient, world: World) -> None:
    pin = world.cards.pins[0]
    refused = client.post(
        "/login", data={"card": world.cards.numbers[0], "pin": pin + "X", "csrf_token": csrf_of(client)}
    )
    assert pin not in refused.get_data(as_text=True)
    assert client.get("/login").status_code == 405  # the login is POST only


def test_a_page_of_another_site_is_redirected_to_the_portal(client: FlaskClient, world: World) -> None:
    """The firewall sends every port-80 request of a guest not let through to the portal."""
    response = client.get("/generate_204?x=1", headers={"Host": "connectivitycheck.example"})
    assert response.status_code == 302
    wanted = "http%3A%2F%2Fconnectivitycheck.example%2Fgenerate_204%3Fx%3D1"
    assert response.headers["Location"] == f"http://localhost/?url={wanted}"
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "csrf_token" in page  # the login form, on the portal's own host
    posted = client.post("/search", data={"q": "x"}, headers={"Host": "shop.example"})  # a form of that site
    assert posted.status_code == 302 and posted.headers["Location"] == "http://localhost/"  # not a CSRF error


def test_captive_api_by_client_address(client: FlaskClient, world: World, clock: Clock, app) -> None:
    before = client.get("/api/captive")
    assert before.mimetype == "application/captive+json"
    assert before.headers["Cache-Control"] == "private, no-store"
    assert json.loads(before.get_data()) == {"captive": True, "user-portal-url": "http://localhost/"}
    login(client, world.cards.numbers[0], world.cards.pins[0])
    clock.advance(5)
    os_poll = app.test_client().get("/api/captive")  # the OS: no cookie, same address
    state = json.loads(os_poll.get_data())
    assert state["captive"] is False and state["can-extend-session"] is True
    assert state["user-portal-url"] == "http://localhost/status"
    assert state["seconds-remaining"] == 25  # heartbeat 'on': the page's deadline comes first
    assert "bytes-remaining" not in state  # traffic is free in this tariff


def test_in_grace_mode_captive_api_polls_keep_the_session_alive(
    committed: Engine, vault: PinVault, database_url, key_file, clock: Clock
) -> None:

    world = make_world(committed, vault, heartbeat="grace")
    app = create_app(portal_settings(database_url, key_file), clock=clock)
    login(app.test_client(), world.cards.numbers[0], world.cards.pins[0])
    for _ in range(3):
        clock.advance(20)
        state = json.loads(app.test_client().get("/api/captive").get_data())
        assert state["captive"] is False
    assert state["seconds-remaining"] == 30  # polled just now: the grace deadline moved
    app.extensions["hotspot_portal"].close()


def test_a_database_outage_is_a_friendly_503(database_url, key_file, clock, world: World, caplog) -> None:
    broken = database_url.replace("hotspot_test", "no_such_database")
    app = create_app(portal_settings(broken, key_file), clock=clock)
    with caplog.at_level(logging.ERROR, logger="portal.errors"):
        response = app.test_client().get("/")
    (line,) = [record for record in caplog.records if record.name == "portal.errors"]  # one line, no traceback
    assert line.exc_info is None and "no_such_database" in line.getMessage()
    assert response.status_code == 503 and response.headers["Retry-After"] == "10"
    page = response.get_data(as_text=True)
    assert "try again in a few seconds" in page and "Traceback" not in page and "psycopg2" not in page
    assert app.test_client().get("/api/captive").get_json() == {"error": page.split('role="alert">')[1].split("<")[0]}
    app.extensions["hotspot_portal"].close()


class BrokenGate:
    def open(self, ip: str, mac: str | None, seconds: int) -> None:
        raise GateError("nft: no such set")

    def close(self, ip: str, mac: str | None) -> None:
        raise GateError("nft: no such set")


def test_a_gate_that_does_not_open_leaves_nothing_billed(client: FlaskClient, world: World, app, committed) -> None:
    app.extensions["hotspot_portal"].gate = BrokenGate()
    page = login(client, world.cards.numbers[0], world.cards.pins[0]).get_data(as_text=True)
    assert "We could not open Internet access. Nothing was charged" in page
    rows = sql(committed, "SELECT status, terminate_cause, stopped_at = started_at FROM sessions")
    assert rows == [("closed", "Gate-Failed", True)]
    assert sql(committed, "SELECT count(*) FROM ledger WHERE cause = 'time'")[0][0] == 0
