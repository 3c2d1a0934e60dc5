"""RADIUS mode: the portal checks the card in the guest's language, then hands the credentials to the NAS
(MikroTik: an auto-submitted form with the CHAP hash; CoovaChilli: a redirect to its /logon) — never the PIN."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from flask import Flask
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from portal import create_app, nas_login, uam
from rlm_hotspot.core.decisions import SERVICE_UNAVAILABLE
from rlm_hotspot.pins import PinVault
from rlm_hotspot.services import catalog
from rlm_hotspot.services.sessions import AccountingUpdate, record_accounting
from rlm_hotspot.services.tariff_cache import TariffCache
from rlm_hotspot.services.uam import set_nas_uam
from tests.portal.conftest import Clock, World, csrf_of, login, make_world, portal_settings
from tests.uam_nas import sign_chilli_url

MIKROTIK_LOGIN = "http://10.5.50.1/login"
UAM_SECRET = "uam-s3cret"
CHALLENGE = "00112233445566778899aabbccddeeff"


@pytest.fixture
def radius_world(committed: Engine, vault: PinVault) -> World:
    world = make_world(committed, vault, count=10, mode="radius", traffic_meter="radius")
    with Session(committed) as db, db.begin():
        for name, vendor, address in (("mt1", "mikrotik", "10.5.50.1"), ("chilli1", "chilli", "10.1.0.1")):
            catalog.add_nas(db, name=name, hotspot="cafe", ip_address=address, secret="s", coa_port=3799, vendor=vendor)
        set_nas_uam(db, "mt1", uam_secret=None, uam_login_url=MIKROTIK_LOGIN)
        set_nas_uam(db, "chilli1", uam_secret=UAM_SECRET, uam_login_url=None)
    return world


@pytest.fixture
def radius_app(database_url: str, key_file: Path, clock: Clock, radius_world: World) -> Iterator[Flask]:
    settings = portal_settings(database_url, key_file)
    app = create_app(settings, clock=clock)
    yield app
    app.extensions["hotspot_portal"].engine.dispose()


def test_mikrotik_gets_the_chap_hash_in_an_auto_submitted_form(radius_app: Flask, radius_world: World) -> None:
    client = radius_app.test_client()
    number, pin = radius_world.cards.numbers[0], radius_world.cards.pins[0]
    client.get(
        "/?identity=mt1&link-login-only=http://10.5.50.1/login&chap-id=%5C001&chap-challenge=%5C002%5C003"
        "&ip=10.5.50.7&mac=02:00:00:00:00:07&link-orig=http://example.com/"
    )
    response = login(client, number, pin)
    page = response.get_data(as_text=True)
    expected = uam.mikrotik_chap_password(pin, b"\x01", b"\x02\x03")
    assert f'action="{MIKROTIK_LOGIN}"' in page and f'value="{expected}"' in page and "data-autosubmit" in page
    assert pin not in page
    assert "form-action 'self' http://10.5.50.1;" in response.headers["Content-Security-Policy"]


def test_coovachilli_gets_a_redirect_to_its_logon(radius_app: Flask, radius_world: World) -> None:
    client = radius_app.test_client()
    number, pin = radius_world.cards.numbers[1], radius_world.cards.pins[1]
    redirect = sign_chilli_url(
        f"http://localhost/?res=notyet&uamip=10.1.0.1&uamport=3990&challenge={CHALLENGE}&ip=10.1.0.5&nasid=chilli1",
        UAM_SECRET,
    )
    client.get(redirect.removeprefix("http://localhost"))
    response = login(client, number, pin)
    assert response.status_code == 303
    target = urlsplit(response.headers["Location"])
    assert (target.netloc, target.path) == ("10.1.0.1:3990", "/logon")
    query = parse_qs(target.query)
    assert query["username"] == [number] and "response" in query and pin not in response.headers["Location"]


def test_refusals_come_from_the_portal_and_count(radius_app: Flask, radius_world: World, committed: Engine) -> None:
    client = radius_app.test_client()
    page = login(client, radius_world.cards.numbers[2], "WRONG").get_data(as_text=True)
    assert "Wrong PIN" in page
    with committed.connect() as conn:
        assert conn.execute(text("SELECT outcome FROM login_attempts")).scalars().all() == ["wrong_pin"]


def test_without_a_nas_redirect_the_guest_is_told_to_connect_first(radius_app: Flask, radius_world: World) -> None:
    client = radius_app.test_client()
    client.get("/?identity=mt1&link-login-only=http://evil.example/login&chap-id=%5C001&chap-challenge=%5C002")
    response = client.post(
        "/login",
        data={"card": radius_world.cards.numbers[3], "pin": radius_world.cards.pins[3], "csrf_token": csrf_of(client)},
    )
    assert response.status_code == 400 and "connect to the Wi-Fi network first" in response.get_data(as_text=True)


def chilli_redirect(result: str = "notyet", **extra: str) -> str:
    query = f"res={result}&uamip=10.1.0.1&uamport=3990&challenge={CHALLENGE}&ip=10.1.0.5&nasid=chilli1"
    query += "".join(f"&{name}={value}" for name, value in extra.items())
    return sign_chilli_url(f"http://localhost/?{query}", UAM_SECRET).removeprefix("http://localhost")


def test_the_login_page_may_send_its_form_to_the_nas_that_sent_the_guest(radius_app: Flask) -> None:
    client = radius_app.test_client()
    assert "form-action 'self';" in client.get("/").headers["Content-Security-Policy"]
    page = client.get(chilli_redirect())
    assert "form-action 'self' http://10.1.0.1:3990;" in page.headers["Content-Security-Policy"]
    forged = chilli_redirect().replace("uamport=3990", "uamport=3991")
    assert "form-action 'self';" in radius_app.test_client().get(forged).headers["Content-Security-Policy"]


def test_a_nas_redirect_is_used_for_one_handoff_only(radius_app: Flask, radius_world: World, committed: Engine) -> None:
    """The form posted again (the back button after CoovaChilli hung up) restarts from a fresh NAS
    redirect instead of reusing the spent challenge; the guest is told, and no wrong PIN is counted."""
    client = radius_app.test_client()
    number, pin = radius_world.cards.numbers[4], radius_world.cards.pins[4]
    client.get(chilli_redirect())
    assert login(client, number, pin).headers["Location"].startswith("http://10.1.0.1:3990/logon?")
    again = client.post("/login", data={"card": number, "pin": pin, "csrf_token": csrf_of(client)})
    assert (again.status_code, again.headers["Location"]) == (303, "http://10.1.0.1:3990/prelogin")
    page = client.get(chilli_redirect()).get_data(as_text=True)  # the NAS's fresh redirect
    assert "did not complete your login" in page and f'value="{number}"' in page
    with committed.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM login_attempts WHERE outcome = 'wrong_pin'")).scalar() == 0


def test_a_failed_login_at_the_nas_restarts_from_a_fresh_redirect(radius_app: Flask, radius_world: World) -> None:
    client = radius_app.test_client()
    client.get(chilli_redirect())
    login(client, radius_world.cards.numbers[5], radius_world.cards.pins[5])
    failed = client.get(chilli_redirect("failed", reason="reject"))  # its challenge expired: no RADIUS reply
    assert (failed.status_code, failed.headers["Location"]) == (303, "http://10.1.0.1:3990/prelogin")
    page = client.get(chilli_redirect()).get_data(as_text=True)
    assert "did not complete your login" in page and f'value="{radius_world.cards.numbers[5]}"' in page


def test_a_session_the_nas_ended_shows_the_ended_page_also_after_chillis_logoff(
    radius_app: Flask, radius_world: World, committed: Engine, clock: Clock
) -> None:
    """The NAS ends the session (here CoovaChilli's logoff: its Accounting-Stop, then `res=logoff` back to
    the portal): the guest reads why, not a bare login form."""
    client = radius_app.test_client()
    number, pin = radius_world.cards.numbers[0], radius_world.cards.pins[0]
    client.get(chilli_redirect())
    login(client, number, pin)  # handed over to the NAS
    ids = {"nas_ip": "10.1.0.1", "username": number, "acct_session_id": "C1"}
    with Session(committed) as db, db.begin():
        record_accounting(db, TariffCache(), AccountingUpdate(status="start", session_time=0, **ids), clock())
    client.get(chilli_redirect("success"))
    assert "You are online" in client.get("/status").get_data(as_text=True)
    clock.advance(60)
    stop = AccountingUpdate(status="stop", session_time=60, terminate_cause="User-Request", **ids)
    with Session(committed) as db, db.begin():
        record_accounting(db, TariffCache(), stop, clock())
    back = client.get(chilli_redirect("logoff"))
    assert (back.status_code, back.headers["Location"]) == (303, "/status")
    page = client.get("/status").get_data(as_text=True)
    assert "You have logged out. Billing has stopped." in page and "Session ended" in page


def wrong_pins(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM login_attempts WHERE outcome = 'wrong_pin'")).scalar_one())


@pytest.mark.parametrize(
    ("language", "told"),
    [
        ("en", "The hotspot refused the login: This card is already in use on another device. Log out there first"),
        ("ru", "Точка доступа отказала во входе: Эта карта уже используется на другом устройстве."),
    ],
)
def test_radius_refusal_passed_on_by_the_nas_is_told_in_the_guests_language(
    radius_app: Flask, radius_world: World, committed: Engine, language: str, told: str
) -> None:
    """RADIUS refused the login after the portal's check passed (the card was taken on another device
    meanwhile): CoovaChilli passes its Reply-Message on in `reply=`, and the guest reads it instead of a
    vague failure. The portal counts nothing for it."""
    client = radius_app.test_client()
    client.set_cookie("lang", language)
    number, pin = radius_world.cards.numbers[6], radius_world.cards.pins[6]
    client.get(chilli_redirect())
    login(client, number, pin)
    reply = quote("This card is already in use on another device.")
    failed = client.get(chilli_redirect("failed", reason="reject", reply=reply))
    assert (failed.status_code, failed.headers["Location"]) == (303, "http://10.1.0.1:3990/prelogin")
    page = client.get(chilli_redirect()).get_data(as_text=True)
    assert told in page and f'value="{number}"' in page
    assert wrong_pins(committed) == 0


def test_radius_unavailable_passed_on_by_the_nas_is_told_in_russian_too(
    radius_app: Flask, radius_world: World, committed: Engine
) -> None:
    """The database was away when RADIUS was asked: its English Reply-Message reaches the guest in their
    language, and counts as nothing."""
    client = radius_app.test_client()
    client.set_cookie("lang", "ru")
    client.get(chilli_redirect())
    login(client, radius_world.cards.numbers[5], radius_world.cards.pins[5])
    client.get(chilli_redirect("failed", reason="reject", reply=quote(SERVICE_UNAVAILABLE)))
    page = client.get(chilli_redirect()).get_data(as_text=True)
    assert "Сервис временно недоступен" in page and SERVICE_UNAVAILABLE not in page
    assert wrong_pins(committed) == 0


def test_a_nas_reason_of_its_own_is_shown_escaped_and_short(radius_app: Flask, radius_world: World) -> None:
    client = radius_app.test_client()
    client.get(chilli_redirect())
    login(client, radius_world.cards.numbers[7], radius_world.cards.pins[7])
    reply = "<script>alert(1)</script>\r\nAsk   the desk " + "x" * 300
    client.get(chilli_redirect("failed", reason="reject", reply=quote(reply)))
    page = client.get(chilli_redirect()).get_data(as_text=True)
    assert "refused the login: &lt;script&gt;alert(1)&lt;/script&gt; Ask the desk xxx" in page
    assert "<script>alert" not in page and "x" * (nas_login.NAS_MESSAGE_MAX - 40) + "…" in page
    assert "x" * nas_login.NAS_MESSAGE_MAX not in page


def test_a_success_before_the_accounting_start_waits_for_it(
    radius_app: Flask, radius_world: World, committed: Engine, clock: Clock
) -> None:
    """CoovaChilli sends the guest back with res=success before radiusd has its Accounting-Start: the
    status page looks again every second for a while, then says plainly that the login is unconfirmed;
    the session shows as soon as the Start is in."""
    client = radius_app.test_client()
    number, pin = radius_world.cards.numbers[8], radius_world.cards.pins[8]
    client.get(chilli_redirect())
    login(client, number, pin)
    assert client.get(chilli_redirect("success")).headers["Location"] == "/status"
    waiting = client.get("/status")
    assert waiting.status_code == 200
    page = waiting.get_data(as_text=True)
    assert "Confirming your login" in page and '<meta http-equiv="refresh" content="1;url=/status">' in page
    clock.advance(nas_login.START_WAIT_S + 1)
    page = client.get("/status").get_data(as_text=True)
    assert "Your login is not confirmed" in page and "http-equiv" not in page
    assert 'href="http://10.1.0.1:3990/prelogin"' in page  # log in again: a fresh redirect from the NAS
    ids = {"nas_ip": "10.1.0.1", "username": number, "acct_session_id": "C9"}
    with Session(committed) as db, db.begin():
        record_accounting(db, TariffCache(), AccountingUpdate(status="start", session_time=0, **ids), clock())
    assert "You are online" in client.get("/status").get_data(as_text=True)
    assert client.get("/status").status_code == 200


def test_without_a_login_waiting_the_status_page_sends_the_guest_to_log_in(radius_app: Flask) -> None:
    response = radius_app.test_client().get("/status")
    assert (response.status_code, response.headers["Location"]) == (303, "/")
