"""A portal app on the private test database, with a clock the tests move, and a world to log into:
a tariff of 0.60 per minute billed per second, a standalone hotspot 'cafe' and a batch of 5.00 cards."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from portal import create_app
from rlm_hotspot.pins import PinVault
from rlm_hotspot.services.cards import GeneratedBatch
from tests.conftest import Clock
from tests.db import factories
from tests.web_apps import csrf_of as page_csrf
from tests.web_apps import running_app, web_settings

SECRET = "test-secret-key-of-at-least-32-characters"


@dataclass(frozen=True)
class World:
    hotspot_id: int
    cards: GeneratedBatch


def make_world(
    engine: Engine, vault: PinVault, *, count: int = 6, per_minute: int = 60, face_value: int = 500, **hotspot: object
) -> World:
    """A time tariff (`per_minute` minor units, billed per second), a standalone hotspot, a batch of cards."""
    with Session(engine) as db, db.begin():
        factories.tariff(db, time_price=per_minute, time_unit_seconds=60)
        options = {"mode": "standalone", "traffic_meter": "netflow", "heartbeat": "on", "heartbeat_timeout": 30}
        hotspot_id = factories.hotspot(db, **{**options, **hotspot})
        return World(hotspot_id, factories.batch(db, vault, count=count, face_value=face_value, hotspot="cafe"))


@pytest.fixture
def world(committed: Engine, vault: PinVault) -> World:
    return make_world(committed, vault)


def portal_settings(database_url: str, key_file: Path, **overrides: object) -> dict[str, object]:
    # the portal's address is the test client's host: other hosts are sent here
    return web_settings(
        database_url, key_file, SECRET, **{"hotspot": "cafe", "portal_url": "http://localhost/", **overrides}
    )


@pytest.fixture
def app(database_url: str, key_file: Path, clock: Clock, world: World) -> Iterator[Flask]:
    yield from running_app(create_app, portal_settings(database_url, key_file), clock, "hotspot_portal")


def csrf_of(client: FlaskClient, path: str = "/") -> str:
    return page_csrf(client, path)


def login(client: FlaskClient, card: str, pin: str, **form: str):  # type: ignore[no-untyped-def]
    return client.post("/login", data={"card": card, "pin": pin, "csrf_token": csrf_of(client), **form})
