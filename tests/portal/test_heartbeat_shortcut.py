"""POST /heartbeat outside Flask's request cycle: it answers exactly as the Flask view does, and passes
every case that is not the plain heartbeat of a logged-in guest on to Flask."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask, request
from flask.testing import FlaskClient
from sqlalchemy import create_engine

from portal import create_app
from portal.heartbeat_shortcut import HeartbeatShortcut
from portal.metrics import CountedRequests
from tests.portal.conftest import Clock, World, login, portal_settings
from tests.portal.test_pages import RU

VARYING_HEADERS = {"Date", "Server", "Content-Length"}


@pytest.fixture
def flask_calls(app: Flask) -> Iterator[list[str]]:
    """The paths Flask's own request cycle handled."""
    calls: list[str] = []

    def count(endpoint: str | None, values: dict | None) -> None:  # runs first: before the CSRF check
        calls.append(request.path)

    app.url_value_preprocessor(count)
    yield calls


def beat(client: FlaskClient, **headers: str):  # type: ignore[no-untyped-def]
    with client.session_transaction() as cookie:
        token = cookie.get("csrf", "")
    return client.post("/heartbeat", headers={"X-CSRF-Token": token, **headers})


def flask_only(app: Flask) -> Flask:
    """The same app with the shortcut taken out (the view answers every heartbeat); requests still counted."""
    counted = app.wsgi_app
    assert isinstance(counted, CountedRequests) and isinstance(counted.app, HeartbeatShortcut)
    counted.app = counted.app.flask
    return app


@pytest.mark.parametrize("language", [{}, RU])
def test_the_shortcut_answers_as_the_flask_view_does(
    app: Flask, client: FlaskClient, world: World, clock: Clock, flask_calls: list[str], language: dict[str, str]
) -> None:
    login(client, world.cards.numbers[0], world.cards.pins[0])
    clock.advance(20)
    shortcut = beat(client, **language)
    assert "/heartbeat" not in flask_calls  # answered before Flask's cycle
    fast = shortcut.get_json()
    assert fast["open"] and fast["balance_minor"] == 480  # 20 s at 0.60 per minute
    flask_only(app)
    view = beat(client, **language)  # same clock: nothing more to bill, the same numbers
    assert "/heartbeat" in flask_calls
    assert view.status_code == shortcut.status_code == 200
    assert view.get_json() == fast
    assert {k: v for k, v in view.headers.items() if k not in VARYING_HEADERS} == {
        k: v for k, v in shortcut.headers.items() if k not in VARYING_HEADERS
    }
    assert fast["fields"]["balance"] == ("4,80\xa0€" if language else "€4.80")


def test_everything_but_a_heartbeat_with_its_csrf_token_goes_to_flask(
    app: Flask, client: FlaskClient, world: World, clock: Clock, flask_calls: list[str]
) -> None:
    anonymous = app.test_client()
    assert beat(anonymous).status_code == 400  # no cookie: no CSRF token either
    login(client, world.cards.numbers[0], world.cards.pins[0])
    flask_calls.clear()
    wrong = client.post("/heartbeat", headers={"X-CSRF-Token": "forged"})
    assert wrong.status_code == 400 and "error" in wrong.get_json()
    assert flask_calls == ["/heartbeat"]
    clock.advance(31)  # past the 30 s heartbeat timeout: the session ends, and the reply says why
    ended = beat(client).get_json()
    assert ended["open"] is False and "this page was closed or stopped" in ended["fields"]["ended"]
    assert ended == beat(client).get_json()  # shown again as often as the page asks


def test_a_database_outage_during_heartbeats_is_flasks_friendly_503(
    app: Flask, client: FlaskClient, world: World, database_url: str
) -> None:
    login(client, world.cards.numbers[0], world.cards.pins[0])
    context = app.extensions["hotspot_portal"]
    context.engine = create_engine(database_url.replace("hotspot_test", "no_such_database"))
    response = beat(client)
    assert response.status_code == 503 and response.headers["Retry-After"] == "10"
    assert "try again in a few seconds" in response.get_json()["error"]
    context.engine.dispose()


def test_a_remembered_cookie_still_expires(
    app: Flask, client: FlaskClient, world: World, flask_calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    login(client, world.cards.numbers[0], world.cards.pins[0])
    assert beat(client).status_code == 200 and "/heartbeat" not in flask_calls  # verified and remembered
    with client.session_transaction() as cookie:
        token = cookie["csrf"]
    too_late = time.time() + app.permanent_session_lifetime.total_seconds() + 60
    monkeypatch.setattr(time, "time", lambda: too_late)
    # the right CSRF token, in a cookie now too old: Flask's answer (no session, so no token to match)
    assert client.post("/heartbeat", headers={"X-CSRF-Token": token}).status_code == 400
    assert "/heartbeat" in flask_calls


def test_behind_a_trusted_proxy_the_forwarded_host_counts(
    database_url: str, key_file: Path, clock: Clock, world: World
) -> None:
    app = create_app(portal_settings(database_url, key_file, proxy_hops=1), clock=clock)
    client = app.test_client()
    login(client, world.cards.numbers[0], world.cards.pins[0])
    signed = client.get_cookie("hotspot_portal")
    assert signed is not None
    with client.session_transaction() as cookie:
        guest = {"Cookie": f"hotspot_portal={signed.value}", "X-CSRF-Token": cookie["csrf"]}
    proxy = app.test_client(use_cookies=False)  # the proxy's own address in Host, the guest's in X-Forwarded-*
    forwarded = proxy.post("/heartbeat", headers={**guest, "Host": "10.0.0.5:8080", "X-Forwarded-Host": "localhost"})
    assert forwarded.status_code == 200 and forwarded.get_json()["open"] is True
    assert proxy.post("/heartbeat", headers={**guest, "Host": "10.0.0.5:8080"}).status_code == 302  # another host
    app.extensions["hotspot_portal"].close()
