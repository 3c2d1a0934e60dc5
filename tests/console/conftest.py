"""A console app on the private test database, a clock the tests move, three staff accounts (one per
role) and a world to sell from: a hotspot 'cafe' and a batch of 5.00 cards with encrypted PINs."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from console import create_app
from rlm_hotspot.pins import PinVault
from rlm_hotspot.services import staff
from rlm_hotspot.services.cards import GeneratedBatch
from tests.conftest import NOW
from tests.db import factories
from tests.portal.conftest import Clock, World, make_world
from tests.web_apps import csrf_of as page_csrf
from tests.web_apps import running_app, web_settings

SECRET = "console-test-secret-key-of-32-characters-at-least"
PASSWORDS = {"cashier": "cashier-password-1", "manager": "manager-password-1", "admin": "admin-password-12"}
CONSOLE_TABLES = "face_value_presets, ledger_operators, card_sales, audit_trail, staff_sessions, staff"


def staff_accounts(engine: Engine) -> Iterator[dict[str, int]]:
    """One account per role, named after it; every console table is emptied afterwards."""
    with Session(engine) as db, db.begin():
        ids = {role: staff.add_staff(db, role, role, password, NOW) for role, password in PASSWORDS.items()}
    yield ids
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {CONSOLE_TABLES} RESTART IDENTITY CASCADE"))


@pytest.fixture
def people(committed: Engine) -> Iterator[dict[str, int]]:
    yield from staff_accounts(committed)


@pytest.fixture
def world(committed: Engine, vault: PinVault, people: dict[str, int]) -> World:
    return make_world(committed, vault)


def console_settings(database_url: str, key_file: Path, **overrides: object) -> dict[str, object]:
    return web_settings(database_url, key_file, SECRET, **{"portal_url": "http://portal.example/", **overrides})


@pytest.fixture
def app(database_url: str, key_file: Path, clock: Clock, world: World) -> Iterator[Flask]:
    yield from running_app(create_app, console_settings(database_url, key_file), clock, "hotspot_console")


def csrf_of(client: FlaskClient, path: str = "/login") -> str:
    return page_csrf(client, path)


def sign_in(client: FlaskClient, name: str, password: str | None = None, code: str = ""):  # type: ignore[no-untyped-def]
    password = PASSWORDS[name] if password is None else password
    form = {"name": name, "password": password, "code": code, "csrf_token": csrf_of(client)}
    return client.post("/login", data=form)


def post(client: FlaskClient, path: str, **form: str | list[str]):  # type: ignore[no-untyped-def]
    """A form posted the way the page's own form does (with the browser's CSRF token); a list is a field
    the form repeats (a sale's lines)."""
    return client.post(path, data={"csrf_token": csrf_of(client, "/"), **form})


def audit_actions(engine: Engine) -> list[tuple[str, str, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT staff_name, action, subject FROM audit_trail ORDER BY id"))
        return [(r.staff_name, r.action, r.subject) for r in rows]


def hashed_batch(engine: Engine, vault: PinVault) -> GeneratedBatch:
    """Two 10.00 cards whose PINs were hashed: printed when they were made, never again."""
    with Session(engine) as db, db.begin():
        return factories.batch(db, vault, count=2, face_value=1000, pin_mode="hashed")


def sheet_facts(pdf: bytes, folder: Path) -> tuple[str, list[str]]:
    """(the text, what each QR code says) of an A4 sheet, read by poppler and zbar as a phone would."""
    path = folder / "sheet.pdf"
    path.write_bytes(pdf)
    words = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout
    subprocess.run(["pdftoppm", "-r", "150", "-png", str(path), str(folder / "page")], check=True)
    scanned = subprocess.run(
        ["zbarimg", "--quiet", "--raw", *map(str, sorted(folder.glob("page*.png")))],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return words, scanned
