"""The console's settings: the shared ones (database, PIN keys, lockout) plus the ``[console]`` section::

[console]
secret_key_file = "console.secret"   # signs cookies; shared by every worker (relative = beside the file)
idle_timeout_s = 900                 # a console session unused this long is over
cookie_secure = true                 # false only behind plain HTTP (tests, a desk on localhost)
proxy_hops = 0                       # reverse proxies in front whose X-Forwarded-For is trusted
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rlm_hotspot.settings import Settings, SettingsError, WebSection, load_web_settings, split_flat_settings

MIN_SECRET_KEY_LENGTH = 32
_SECTION = WebSection(
    "console",
    env_names={
        "HOTSPOT_CONSOLE_SECRET_KEY": "secret_key",
        "HOTSPOT_CONSOLE_IDLE_TIMEOUT": "idle_timeout_s",
        "HOTSPOT_CONSOLE_COOKIE_SECURE": "cookie_secure",
        "HOTSPOT_CONSOLE_TIMEZONE": "timezone",
    },
    whole_numbers=("idle_timeout_s", "proxy_hops"),
)


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
        core, own = split_flat_settings(values, {f.name for f in fields(cls)} - {"core"}, "console")
        return cls(core=core, **own)  # type: ignore[arg-type]


def load_console_settings(
    path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    overrides: Mapping[str, object] | None = None,
    default_secret_key: str | None = None,
) -> ConsoleSettings:
    """The settings file's shared part and ``[console]`` section, then the environment, then `overrides`."""
    return load_web_settings(
        ConsoleSettings, _SECTION, path, environ, overrides=overrides, default_secret_key=default_secret_key
    )
