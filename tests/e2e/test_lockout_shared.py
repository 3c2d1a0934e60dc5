"""The lockout is shared: a device locked out through the real radiusd is refused by the portal's
pre-check, and one locked out by the portal's pre-check is refused by radiusd (one name: its MAC)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import Engine

from portal import create_app
from rlm_hotspot.core.decisions import Refusal
from rlm_hotspot.pins import PinVault
from tests.e2e.radius_harness import NAS_BY_VENDOR, RadiusServer, build_world
from tests.e2e.test_uam_handoff import RADIUS_HOTSPOT, UAM_SECRET, configure_nas
from tests.portal.conftest import csrf_of, portal_settings
from tests.portal.test_radius_mode import CHALLENGE
from tests.uam_nas import sign_chilli_url

CHILLI = NAS_BY_VENDOR["chilli"]


@pytest.fixture
def portal_app(radius_database: str, key_file: Path) -> Iterator[Flask]:
    app = create_app(portal_settings(radius_database, key_file, lockout_attempts=3))  # as radiusd's settings
    yield app
    app.extensions["hotspot_portal"].close()


def redirected(app: Flask, mac: str):  # type: ignore[no-untyped-def]
    """A guest's browser, sent to the portal by CoovaChilli (signed redirect naming the device's MAC)."""
    client = app.test_client()
    query = f"res=notyet&uamip=10.1.0.1&uamport=3990&challenge={CHALLENGE}&ip=10.1.0.5&mac={mac}&nasid=chilli"
    client.get(sign_chilli_url(f"http://localhost/?{query}", UAM_SECRET).removeprefix("http://localhost"))
    return client


def portal_login(client, number: str, pin: str):  # type: ignore[no-untyped-def]
    return client.post("/login", data={"card": number, "pin": pin, "csrf_token": csrf_of(client)})


def test_radius_and_the_portal_lock_out_the_same_device(
    radius_server: RadiusServer, radius_db: Engine, vault: PinVault, portal_app: Flask
) -> None:
    batch = build_world(radius_db, vault, hotspot=RADIUS_HOTSPOT, count=8)
    configure_nas(radius_db, "chilli", uam_secret=UAM_SECRET)
    n, pins = batch.numbers, batch.pins
    # locked out through RADIUS (CoovaChilli's Calling-Station-Id spelling) ...
    for i in range(3):
        reply = radius_server.login(n[i], "WRONG", nas_ip=CHILLI, Calling_Station_Id="02-00-00-77-00-0A")
        assert reply.attributes.get("Reply-Message") == [Refusal.WRONG_PIN.message]
    page = portal_login(redirected(portal_app, "02-00-00-77-00-0A"), n[3], pins[3]).get_data(as_text=True)
    assert "Too many wrong" in page  # ... refused by the portal's pre-check
    assert portal_login(redirected(portal_app, "02-00-00-77-00-0B"), n[3], pins[3]).status_code == 303  # handed over
    # locked out by the portal's pre-check ...
    guest = redirected(portal_app, "02:00:00:77:00:0c")
    for i in range(3):
        assert "Wrong PIN" in portal_login(guest, n[i + 4], "WRONG").get_data(as_text=True)
    refused = radius_server.login(n[7], pins[7], nas_ip=CHILLI, Calling_Station_Id="02-00-00-77-00-0C")
    assert refused.attributes.get("Reply-Message") == [Refusal.LOCKED_OUT.message]  # ... refused by RADIUS
    assert radius_server.login(n[7], pins[7], nas_ip=CHILLI, Calling_Station_Id="02-00-00-77-00-0D").accepted
