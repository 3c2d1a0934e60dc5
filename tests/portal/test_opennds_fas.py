"""The portal as openNDS's FAS, through the Flask test client: level 0 and the refusals.

Level 1 runs against a real openNDS 9.10 in tests/e2e/test_gate_opennds.py; the lab's openNDS is set
up for level 1 only (a second openNDS start per level would double that test's time), so level 0 —
whose parameters the gateway lab notes (§5) give verbatim — is checked here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import Engine, text

from portal import create_app
from tests.portal.conftest import Clock, World, login, portal_settings

GATEWAY = "10.77.0.1:2050"
LEVEL0 = (
    f"/?authaction=http://{GATEWAY}/opennds_auth/?clientip={{ip}}&gatewayname=lab&tok=f00d&redir=http://example.com/"
)


@pytest.fixture
def fas_app(database_url: str, key_file: Path, clock: Clock, world: World) -> Iterator[Flask]:
    options = {"ndsctl": "false", "faskey": "s3cretkey", "gateway_address": GATEWAY}  # ndsctl is never run here
    app = create_app(portal_settings(database_url, key_file, gate="opennds", gate_options=options), clock=clock)
    yield app
    app.extensions["hotspot_portal"].close()


def test_level0_login_sends_the_browser_to_openndss_auth_with_its_token(
    fas_app: Flask, world: World, committed: Engine
) -> None:
    client = fas_app.test_client()
    assert client.get(LEVEL0.format(ip="127.0.0.1")).status_code == 200
    response = login(client, world.cards.numbers[0], world.cards.pins[0])
    assert response.status_code == 303
    assert (
        response.headers["Location"] == f"http://{GATEWAY}/opennds_auth/?tok=f00d&redir=http%3A%2F%2Flocalhost%2Fstatus"
    )
    with committed.connect() as conn:
        assert conn.execute(text("SELECT status, framed_ip, calling_station_id FROM sessions")).one() == (
            "open",
            "127.0.0.1",
            None,
        )
    assert 'href="http://example.com/"' in client.get("/status").get_data(as_text=True)  # openNDS's redir


@pytest.mark.parametrize(
    "link",
    [
        LEVEL0.format(ip="10.77.0.99"),  # names another client than the one asking
        LEVEL0.format(ip="127.0.0.1").replace(GATEWAY, "203.0.113.9:80"),  # another gateway: no open redirect
        "/?fas=%25%25not-base64",
    ],
)
def test_a_fas_link_that_does_not_fit_is_refused_with_a_clear_message(
    fas_app: Flask, world: World, committed: Engine, link: str
) -> None:
    client = fas_app.test_client()
    response = client.get(link)
    assert response.status_code == 400
    assert "Please open any web page again" in response.get_data(as_text=True)
    with client.session_transaction() as cookie:
        assert "fas" not in cookie


def test_a_fas_link_that_stopped_fitting_is_refused_at_login(fas_app: Flask, world: World, committed: Engine) -> None:
    """The FAS parameters are checked again at the login: here the guest's address changed meanwhile."""
    client = fas_app.test_client()
    client.get(LEVEL0.format(ip="127.0.0.1"))
    with client.session_transaction() as cookie:
        token = cookie["csrf"]  # the login page put it in its form
    response = client.post(
        "/login",
        data={"card": world.cards.numbers[0], "pin": world.cards.pins[0], "csrf_token": token},
        environ_base={"REMOTE_ADDR": "127.0.0.2"},
    )
    assert response.status_code == 400 and "Please open any web page again" in response.get_data(as_text=True)
    with committed.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM sessions")).scalar_one() == 0
