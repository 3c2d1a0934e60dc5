"""Settings file + environment overrides, and the PIN key file: clear errors, rotation, no cleartext."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlm_hotspot.pins import PinKeyError, PinVault, create_key_file
from rlm_hotspot.settings import SettingsError, load_settings


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_file_values_relative_key_path_and_environment_overrides(tmp_path: Path) -> None:
    config = write(
        tmp_path / "hotspot.toml",
        '[database]\nurl = "postgresql://a@/b"\nstatement_timeout_ms = 1500\n'
        '[pins]\nkey_file = "keys/pin.keys"\nmode = "hashed"\n[security]\nlockout_attempts = 3\n'
        '[radius]\nmetrics_address = "0.0.0.0"\nmetrics_port = 0\n',
    )
    settings = load_settings(config, environ={})
    assert (settings.radius_metrics_address, settings.radius_metrics_port) == ("0.0.0.0", 0)
    assert settings.database_url == "postgresql://a@/b"
    assert settings.statement_timeout_ms == 1500
    assert settings.pin_key_file == tmp_path / "keys" / "pin.keys"
    assert (settings.pin_mode, settings.lockout_attempts) == ("hashed", 3)
    overridden = load_settings(
        config, environ={"HOTSPOT_DATABASE_URL": "postgresql://x@/y", "HOTSPOT_PIN_MODE": "encrypted"}
    )
    assert (overridden.database_url, overridden.pin_mode) == ("postgresql://x@/y", "encrypted")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[database\nurl=", "not valid TOML"),
        ('[pins]\nkey_file = "k"\n', "no database configured"),
        ('[database]\nurl = "u"\n', "no PIN key file"),
        ('[database]\nurl = "u"\nstatement_timeout_ms = "fast"\n[pins]\nkey_file = "k"\n', "must be an integer"),
        ('[database]\nurl = "u"\n[pins]\nkey_file = "k"\nmode = "plain"\n', "pins.mode must be one of"),
        ('[database]\nurl = "u"\n[pins]\nkey_file = "k"\n[radius]\nmetrics_port = 70000\n', "must be a TCP port"),
    ],
)
def test_bad_settings_are_one_clear_message(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(write(tmp_path / "s.toml", text), environ={})


def test_missing_settings_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="not found"):
        load_settings(tmp_path / "nope.toml", environ={})
    with pytest.raises(SettingsError, match="HOTSPOT_STATEMENT_TIMEOUT_MS"):
        load_settings(
            None,
            environ={"HOTSPOT_DATABASE_URL": "u", "HOTSPOT_PIN_KEY_FILE": "k", "HOTSPOT_STATEMENT_TIMEOUT_MS": "soon"},
        )


def test_key_file_is_created_once_and_private(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "pin.keys"
    assert create_key_file(path) is True
    first = path.read_text()
    assert create_key_file(path) is False and path.read_text() == first
    assert path.stat().st_mode & 0o007 == 0


def test_rotation_old_cards_still_open_new_cards_use_the_new_key(tmp_path: Path) -> None:
    path = tmp_path / "pin.keys"
    create_key_file(path)
    old_vault = PinVault.from_file(path)
    key_id, sealed = old_vault.current_key_id, next(old_vault.seal_many(["00011234567"], ["ABCDEF3467"], "encrypted"))
    with path.open("a") as keys:
        keys.write("2:" + "ab" * 32 + "\n")
    vault = PinVault.from_file(path)
    assert vault.current_key_id == 2
    assert vault.reveal("00011234567", key_id, sealed) == "ABCDEF3467"
    assert b"ABCDEF3467" not in sealed
    new_id, hashed = vault.current_key_id, next(vault.seal_many(["00011234567"], ["ABCDEF3467"], "hashed"))
    assert new_id == 2 and vault.verify("00011234567", "ABCDEF3467", new_id, hashed)
    assert vault.reveal("00011234567", new_id, hashed) is None


@pytest.mark.parametrize(
    ("content", "message"),
    [("", "holds no key"), ("1:zz\n", "expected"), ("1:" + "ab" * 16 + "\n", "32 bytes"), ("x\n", "expected")],
)
def test_bad_key_files(tmp_path: Path, content: str, message: str) -> None:
    with pytest.raises(PinKeyError, match=message):
        PinVault.from_file(write(tmp_path / "k", content))
    with pytest.raises(PinKeyError, match="not found"):
        PinVault.from_file(tmp_path / "missing")


def test_unknown_key_id_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "pin.keys"
    create_key_file(path)
    with pytest.raises(PinKeyError, match="key 7 is not in the key file"):
        PinVault.from_file(path).verify("1", "2", 7, b"\x01" + bytes(40))
