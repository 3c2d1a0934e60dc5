"""PIN key rotation through hotspotctl on the real database: add a key, re-seal, retire; nothing lost."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from rlm_hotspot import totp
from rlm_hotspot.cli.main import cli
from rlm_hotspot.pins import PinVault, create_key_file
from rlm_hotspot.services import staff
from rlm_hotspot.services.staff import enable_totp, new_totp_secret
from tests.conftest import NOW
from tests.db import factories
from tests.db.test_cli import refused
from tests.db.test_sessions import login, radius_world


@pytest.fixture
def own_key_file(tmp_path: Path, key_file: Path) -> Path:
    """A copy of the session's key file that this test may rotate."""
    path = tmp_path / "pin.keys"
    shutil.copy(key_file, path)
    path.chmod(0o640)
    return path


@pytest.fixture
def run(committed: Engine, database_url: str, own_key_file: Path):  # type: ignore[no-untyped-def]
    env = {
        "HOTSPOT_DATABASE_URL": database_url,
        "HOTSPOT_PIN_KEY_FILE": str(own_key_file),
        "HOTSPOT_CONFIG": os.devnull,
    }

    def invoke(*args: str, ok: bool = True) -> Result:
        result = CliRunner().invoke(cli, list(args), env=env)
        if ok:
            assert result.exit_code == 0, f"{args}: {result.output}"
        return result

    return invoke


def sealed_keys(engine: Engine) -> dict[int, int]:
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT pin_key_id, count(*) FROM cards GROUP BY 1")).all())  # type: ignore[arg-type]


def test_rotation_reseals_every_pin_in_steps_and_the_old_key_can_go(run, committed: Engine, own_key_file: Path) -> None:  # type: ignore[no-untyped-def]
    old_vault = PinVault.from_file(own_key_file)
    with Session(committed) as db, db.begin():
        made = radius_world(db, old_vault)
        more = factories.batch(db, old_vault, count=4, hotspot="cafe")
        clerk = staff.add_staff(db, "clerk", "cashier", "a long password", NOW)
        secret = new_totp_secret()
        enable_totp(
            db, old_vault, staff.get_staff(db, "clerk"), secret, totp.code_at(secret, int(NOW.timestamp()) // 30), NOW
        )
    assert clerk
    cards = list(zip(made.numbers + more.numbers, made.pins + more.pins, strict=True))

    refused(run("pins", "retire-key", "1", ok=False), "current key")
    assert "added PIN key 2" in run("pins", "add-key").output
    refused(run("pins", "retire-key", "1", ok=False), r"still seals 7 encrypted card\(s\), 0 hashed card\(s\) and 1")
    output = run("pins", "rotate", "--step", "3").output  # 7 cards: three steps, the last one short
    assert "re-sealed 7 card PIN(s) and 1 second-factor secret(s) under key 2" in output
    assert sealed_keys(committed) == {2: 7}
    assert "re-sealed 0 card PIN(s)" in run("pins", "rotate").output  # run again: nothing left, nothing changed

    run("pins", "retire-key", "1")
    new_vault = PinVault.from_file(own_key_file)
    assert set(new_vault.keys) == {2} and new_vault.keys[2] != old_vault.keys[1]
    assert oct(own_key_file.stat().st_mode & 0o777) == "0o640"
    with Session(committed) as db, db.begin():
        for number, pin in cards:
            assert login(db, new_vault, number, pin=pin).card_number == number
        clerk_record = staff.get_staff(db, "clerk")
        assert (
            new_vault.reveal(
                staff.totp_seal_name("clerk"), clerk_record.totp_key_id or 0, clerk_record.totp_secret or b""
            )
            == secret
        )
    with committed.connect() as conn:
        actions = [row.action for row in conn.execute(text("SELECT action FROM audit_trail ORDER BY id"))]
    assert actions[:1] == ["cli.pins.add-key"] and actions[-1] == "cli.pins.retire-key" and "cli.pins.rotate" in actions


def test_hashed_pins_keep_their_key(run, committed: Engine, own_key_file: Path) -> None:  # type: ignore[no-untyped-def]
    with Session(committed) as db, db.begin():
        radius_world(db, PinVault.from_file(own_key_file), pin_mode="hashed")
    run("pins", "add-key")
    assert "key 1 still seals 3 hashed card(s) (a hash cannot be re-sealed)" in run("pins", "rotate").output
    refused(run("pins", "retire-key", "1", ok=False), r"3 hashed card\(s\).*cannot be re-sealed")
    assert sealed_keys(committed) == {1: 3}
    assert set(PinVault.from_file(own_key_file).keys) == {1, 2}


def test_a_foreign_key_file_is_named_and_its_rotation_changes_nothing(  # type: ignore[no-untyped-def]
    run, committed: Engine, own_key_file: Path
) -> None:
    with Session(committed) as db, db.begin():
        radius_world(db, PinVault.from_file(own_key_file))
    own_key_file.unlink()
    create_key_file(own_key_file)  # what `db init` makes on a restored host: a key 1, but another one
    assert "NO: wrong key file?" in run("pins", "status").output
    run("pins", "add-key")
    refused(run("pins", "rotate", ok=False), r"3 secret\(s\) do not open with the key file's key .*pins status")
    assert sealed_keys(committed) == {1: 3}
