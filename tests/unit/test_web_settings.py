"""The portal's and the console's sections of the one settings file: read by the same code
(rlm_hotspot.settings.load_web_settings), so a secret key file, the environment and typed-in numbers
behave alike in both."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from console.settings import load_console_settings
from portal.settings import load_portal_settings
from rlm_hotspot.settings import SettingsError

KEY = "k" * 40
SHARED = '[database]\nurl = "postgresql://a@/b"\n[pins]\nkey_file = "pin.keys"\n'


def settings_file(tmp_path: Path, sections: str) -> Path:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "cookie.secret").write_text(KEY + "\n")
    path = tmp_path / "hotspot.toml"
    path.write_text(SHARED + sections)
    return path


def test_each_apps_section_its_key_file_beside_the_settings_and_the_environment_over_it(tmp_path: Path) -> None:
    path = settings_file(
        tmp_path,
        '[portal]\nurl = "https://wifi.example/"\nhotspot = "cafe"\nsecret_key_file = "keys/cookie.secret"\n'
        '[portal.gate_options]\ntable = "captive"\n'
        '[console]\nsecret_key_file = "keys/cookie.secret"\nidle_timeout_s = 600\n',
    )
    portal = load_portal_settings(path, {"HOTSPOT_PORTAL_HEARTBEAT_INTERVAL": "20"})
    assert (portal.secret_key, portal.hotspot, portal.heartbeat_interval_s) == (KEY, "cafe", 20)
    assert (portal.public_url, portal.gate_options) == ("https://wifi.example/", {"table": "captive"})
    console = load_console_settings(path, {"HOTSPOT_CONSOLE_COOKIE_SECURE": "off"})
    assert (console.secret_key, console.idle_timeout_s, console.cookie_secure) == (KEY, 600, False)
    assert load_console_settings(path, {}, overrides={"idle_timeout_s": 120}).idle_timeout_s == 120


@pytest.mark.parametrize(
    ("load", "sections", "environ", "message"),
    [
        (load_console_settings, "", {}, "no cookie secret: set console.secret_key_file or HOTSPOT_CONSOLE_SECRET_KEY"),
        (load_portal_settings, '[portal]\nhotspot = "cafe"\n', {},
         "no cookie secret: set portal.secret_key_file or HOTSPOT_PORTAL_SECRET_KEY"),
        (load_console_settings, '[console]\nsecret_key_file = "nowhere"\n', {}, "console secret key file .*nowhere"),
        (load_console_settings, "", {"HOTSPOT_CONSOLE_SECRET_KEY": KEY, "HOTSPOT_CONSOLE_IDLE_TIMEOUT": "15m"},
         r"console.idle_timeout_s: '15m' is not a whole number"),
        (load_portal_settings, "", {"HOTSPOT_PORTAL_SECRET_KEY": KEY}, "no hotspot named"),
        (load_console_settings, '[console]\ncolour = "blue"\n', {"HOTSPOT_CONSOLE_SECRET_KEY": KEY},
         r"\[console\]: .*colour"),
    ],
)  # fmt: skip
def test_what_cannot_work_is_refused_with_the_setting_to_fix(
    tmp_path: Path, load: Callable[[Path, dict[str, str]], object], sections: str, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        load(settings_file(tmp_path, sections), environ)
