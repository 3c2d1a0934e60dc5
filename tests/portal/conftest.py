"""A portal app on the private test database, with a clock the tests move, and a world to log into:
a tariff of 0.60 per minute billed per second, a standalone hotspot 'cafe' and a batch of 5.00 cards."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from portal import create_app
from rlm_hotspot.pins import PinVault
from rlm_hotspot.services.cards import GeneratedBatch
from tests.conftest import NOW
from tests.db import factories

SECRET = "test-secret-key-of-at-least-32-characters"


@dataclass
class Clock:
    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


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


@pytest.fixture
def clock() -> Clock:
    return Clock()


def portal_settings(database_url: str, key_file: Path, **overrides: object) -> dict[str, object]:
    return {
        "database_url": database_url,
        "pin_key_file": key_file,
        "hotspot": "cafe",
        "secret_key": SECRET,
        "cookie_secure": False,
        "portal_url": "http://localhost/",  # the test client's host: other hosts are sent here
        **overrides,
    }


@pytest.fixture
def app(database_url: str, key_file: Path, clock: Clock, world: World) -> Iterator[Flask]:
    app = create_app(portal_settings(database_url, key_file), clock=clock)
    yield app
    app.extensions["hotspot_portal"].close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(client: FlaskClient, path: str = "/") -> str:
    """The token a real browser would find in the page's form."""
    match = _CSRF.search(client.get(path).get_data(as_text=True))
    assert match, f"no CSRF field on {path}"
    return match.group(1)


def login(client: FlaskClient, card: str, pin: str, **form: str):  # type: ignore[no-untyped-def]
    return client.post("/login", data={"card": card, "pin": pin, "csrf_token": csrf_of(client), **form})
