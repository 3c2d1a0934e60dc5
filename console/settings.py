"""The console's settings: the shared ones (database, PIN keys, lockout) plus the ``[console]`` section::

[console]
secret_key_file = "console.secret"   # signs cookies; shared by every worker (relative = beside the file)
idle_timeout_s = 900                 # a console session unused this long is over
cookie_secure = true                 # false only behind plain HTTP (tests, a desk on localhost)
proxy_hops = 0                       # reverse proxies in front whose X-Forwarded-For is trusted
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rlm_hotspot.settings import DEFAULT_CONFIG_PATH, Settings, SettingsError, load_settings

MIN_SECRET_KEY_LENGTH = 32
_ENV = {
    "HOTSPOT_CONSOLE_SECRET_KEY": "secret_key",
    "HOTSPOT_CONSOLE_IDLE_TIMEOUT": "idle_timeout_s",
    "HOTSPOT_CONSOLE_COOKIE_SECURE": "cookie_secure",
    "HOTSPOT_CONSOLE_TIMEZONE": "timezone",
}


@dataclass(frozen=True)
class ConsoleSettings:
    core: Settings
    secret_key: str
    idle_timeout_s: int = 900
    cookie_secure: bool = True
    proxy_hops: int = 0
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise SettingsError(
                f"console.timezone: {self.timezone!r} is not a time zone (e.g. Europe/Moscow)"
            ) from None
        if len(self.secret_key) < MIN_SECRET_KEY_LENGTH:
            raise SettingsError(f"console secret key: at least {MIN_SECRET_KEY_LENGTH} characters are needed")
        if not 60 <= self.idle_timeout_s <= 86_400:
            raise SettingsError("console.idle_timeout_s must be between 60 and 86400 seconds")
        if self.proxy_hops < 0:
            raise SettingsError("console.proxy_hops must not be negative")

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> ConsoleSettings:
        """One flat mapping (tests): the shared settings' names plus the console's."""
        core_names = {f.name for f in fields(Settings)}
        own_names = {f.name for f in fields(cls)} - {"core"}
        unknown = set(values) - core_names - own_names
        if unknown:
            raise SettingsError(f"unknown console setting(s): {', '.join(sorted(unknown))}")
        core = {k: v for k, v in values.items() if k in core_names}
        core["pin_key_file"] = Path(str(core["pin_key_file"]))
        return cls(core=Settings(**core), **{k: v for k, v in values.items() if k in own_names})  # type: ignore[arg-type]  # values by field name; __post_init__ checks them


def load_console_settings(
    path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    overrides: Mapping[str, object] | None = None,
    default_secret_key: str | None = None,
) -> ConsoleSettings:
    """The settings file's shared part and ``[console]`` section, then the environment, then `overrides`."""
    env = dict(os.environ if environ is None else environ)
    core = load_settings(path, env)
    chosen = Path(path) if path else Path(env["HOTSPOT_CONFIG"]) if env.get("HOTSPOT_CONFIG") else None
    if chosen is None and DEFAULT_CONFIG_PATH.exists():
        chosen = DEFAULT_CONFIG_PATH
    section = _section(chosen) if chosen else {}
    values: dict[str, object] = {k: v for k, v in section.items() if k != "secret_key_file"}
    if "secret_key_file" in section and chosen is not None:
        key_path = Path(str(section["secret_key_file"]))
        key_path = key_path if key_path.is_absolute() else chosen.parent / key_path
        try:
            values["secret_key"] = key_path.read_text().strip()
        except OSError as exc:
            raise SettingsError(f"console secret key file {key_path}: {exc.strerror}") from None
    values.update({name: env[var] for var, name in _ENV.items() if env.get(var)})
    values.update(overrides or {})
    if default_secret_key and "secret_key" not in values:
        values["secret_key"] = default_secret_key
    if "secret_key" not in values:
        raise SettingsError("no cookie secret: set console.secret_key_file or HOTSPOT_CONSOLE_SECRET_KEY")
    if isinstance(values.get("cookie_secure"), str):
        values["cookie_secure"] = str(values["cookie_secure"]).lower() not in ("0", "false", "no", "off")
    for whole in ("idle_timeout_s", "proxy_hops"):
        if isinstance(values.get(whole), str):
            try:
                values[whole] = int(str(values[whole]))
            except ValueError:
                raise SettingsError(f"console.{whole}: {values[whole]!r} is not a whole number") from None
    try:
        return ConsoleSettings(core=core, **values)  # type: ignore[arg-type]  # values by field name; __post_init__ checks them
    except TypeError as exc:
        raise SettingsError(f"[console]: {exc}") from None


def _section(path: Path) -> dict[str, object]:
    try:
        return dict(tomllib.loads(path.read_text()).get("console", {}))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"settings file {path}: {exc}") from exc
