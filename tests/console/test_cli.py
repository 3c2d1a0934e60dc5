"""hotspotctl console user … and hotspotctl audit, through click's CliRunner against the real database."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, text

from rlm_hotspot.cli.main import cli
from rlm_hotspot.services.staff import verify_password
from tests.console.conftest import CONSOLE_TABLES


@pytest.fixture
def run(committed: Engine, database_url: str, key_file: Path) -> Iterator[Callable[..., Result]]:
    runner = CliRunner()
    env = {"HOTSPOT_DATABASE_URL": database_url, "HOTSPOT_PIN_KEY_FILE": str(key_file), "HOTSPOT_CONFIG": os.devnull}

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(cli, list(args), env=env, input=input)

    yield invoke
    with committed.begin() as conn:
        conn.execute(text(f"TRUNCATE {CONSOLE_TABLES} RESTART IDENTITY CASCADE"))


def stored_hash(engine: Engine, name: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(text("SELECT password_hash FROM staff WHERE name = :n"), {"n": name}).scalar()


def test_the_first_admin_is_created_with_the_password_asked_twice_and_never_echoed(
    run: Callable[..., Result], committed: Engine
) -> None:
    result = run("console", "user", "add", "anna", "--role", "admin", input="first-admin-pw\nfirst-admin-pw\n")
    assert result.exit_code == 0, result.output
    assert "first-admin-pw" not in result.output
    assert "staff account anna (admin) created" in result.output
    stored = stored_hash(committed, "anna")
    assert stored is not None and verify_password("first-admin-pw", stored)


def test_two_different_passwords_are_asked_again_and_a_short_one_refused(
    run: Callable[..., Result], committed: Engine
) -> None:
    result = run("console", "user", "add", "anna", "--role", "admin", input="one-password\nanother-one\nshort\nshort\n")
    assert result.exit_code == 1
    assert "do not match" in result.output and "at least 10 characters" in result.output
    assert "Traceback" not in result.output
    assert stored_hash(committed, "anna") is None


def test_a_duplicate_name_and_a_bad_role_are_refused(run: Callable[..., Result]) -> None:
    assert run("console", "user", "add", "anna", "--role", "cashier", input="pw-anna-123\npw-anna-123\n").exit_code == 0
    again = run("console", "user", "add", "anna", "--role", "cashier", input="pw-anna-123\npw-anna-123\n")
    assert again.exit_code == 1 and "already exists" in again.output
    assert run("console", "user", "add", "bob", "--role", "owner").exit_code == 2


def test_user_set_and_list(run: Callable[..., Result]) -> None:
    run("console", "user", "add", "anna", "--role", "cashier", input="pw-anna-123\npw-anna-123\n")
    result = run("console", "user", "set", "anna", "--role", "manager", "--disable")
    assert result.exit_code == 0 and "anna: manager, disabled" in result.output
    listed = run("console", "user", "list", "--format", "csv").output
    assert "anna,manager,False,False" in listed and "scrypt" not in listed
    assert run("console", "user", "set", "nobody", "--enable").exit_code == 1


def test_audit_lists_the_trail_with_since_and_format(run: Callable[..., Result]) -> None:
    run("console", "user", "add", "anna", "--role", "admin", input="pw-anna-123\npw-anna-123\n")
    run("console", "user", "set", "anna", "--role", "manager")
    rows = list(csv.DictReader(io.StringIO(run("audit", "--format", "csv").output)))
    assert [(r["action"], r["subject"], r["client"]) for r in rows] == [
        ("staff.change", "anna", "cli"),
        ("staff.add", "anna", "cli"),
    ]
    assert rows[0]["staff_name"].startswith("hotspotctl:")
    assert run("audit", "--since", "2999-01-01").output.strip() == "(nothing)"
    assert len(list(csv.DictReader(io.StringIO(run("audit", "--action", "staff.add", "--format", "csv").output)))) == 1
    bad = run("audit", "--since", "yesterday")
    assert bad.exit_code == 2 and "bad date" in bad.output
