"""Settings shared by every entry point: one TOML file plus environment overrides.

The file is named by ``--config``, else ``$HOTSPOT_CONFIG``, else ``/etc/rlm-hotspot/hotspot.toml``
when present; every value can be overridden by an environment variable (``HOTSPOT_DATABASE_URL``,
``HOTSPOT_PIN_KEY_FILE``, ``HOTSPOT_PIN_MODE``, ``HOTSPOT_STATEMENT_TIMEOUT_MS``,
``HOTSPOT_DATABASE_TRANSACTION_POOLING``), so that tests, the demo and systemd units need no file edits.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TypeVar

DEFAULT_CONFIG_PATH = Path("/etc/rlm-hotspot/hotspot.toml")
AppSettings = TypeVar("AppSettings")
PIN_MODES = ("encrypted", "hashed")


class SettingsError(ValueError):
    """The configuration cannot be used; the message says which value and why."""


@dataclass(frozen=True)
class Settings:
    database_url: str
    pin_key_file: Path
    pin_mode: str = "encrypted"
    statement_timeout_ms: int = 3000
    connect_timeout_s: int = 3
    # the database URL is a pooler in transaction mode (pgbouncer pool_mode = transaction): no startup
    # options, no server-side PREPARE, no LISTEN (docs/ha.md, "pgbouncer")
    transaction_pooling: bool = False
    portal_url: str = "http://portal.hotspot.local/"
    lockout_attempts: int = 5  # wrong PINs per card number, or per client, within the window
    lockout_window_s: int = 900  # ... lock that card number / client for this long
    pending_session_ttl_s: int = 120  # an Access-Accept with no Accounting-Start stops counting after this
    # where the FreeRADIUS module serves its Prometheus metrics (from inside radiusd); port 0: not served
    radius_metrics_address: str = "127.0.0.1"
    radius_metrics_port: int = 9479

    def __post_init__(self) -> None:
        if self.pin_mode not in PIN_MODES:
            raise SettingsError(f"pins.mode must be one of {', '.join(PIN_MODES)}, not {self.pin_mode!r}")
        if self.statement_timeout_ms <= 0 or self.connect_timeout_s <= 0:
            raise SettingsError("database timeouts must be positive")
        if self.lockout_attempts < 1 or self.lockout_window_s < 1 or self.pending_session_ttl_s < 1:
            raise SettingsError(
                "security.lockout_attempts, lockout_window_s and pending_session_ttl_s must be positive"
            )
        if not 0 <= self.radius_metrics_port <= 65535:
            raise SettingsError("radius.metrics_port must be a TCP port (0 to 65535; 0: no metrics)")


def _flag(text: str) -> bool:
    """A yes/no environment value."""
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{text!r} is not a yes/no value (true, false, 1, 0, yes, no, on, off)")


_ENV: dict[str, tuple[str, Callable[[str], object]]] = {
    "HOTSPOT_DATABASE_URL": ("database_url", str),
    "HOTSPOT_PIN_KEY_FILE": ("pin_key_file", Path),
    "HOTSPOT_PIN_MODE": ("pin_mode", str),
    "HOTSPOT_STATEMENT_TIMEOUT_MS": ("statement_timeout_ms", int),
    "HOTSPOT_PORTAL_URL": ("portal_url", str),
    "HOTSPOT_DATABASE_TRANSACTION_POOLING": ("transaction_pooling", _flag),
}


def load_settings(path: str | Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Read the settings file (if any) and apply environment overrides."""
    env = os.environ if environ is None else environ
    chosen = settings_file(path, env)
    data: dict[str, object] = {}
    if chosen is not None:
        data = _read_file(chosen)
    for var, (field, kind) in _ENV.items():
        if env.get(var):
            try:
                data[field] = kind(env[var])
            except ValueError as exc:
                raise SettingsError(f"{var}: {exc}") from exc
    if "database_url" not in data:
        raise SettingsError("no database configured: set database.url in the settings file or HOTSPOT_DATABASE_URL")
    if "pin_key_file" not in data:
        raise SettingsError("no PIN key file configured: set pins.key_file or HOTSPOT_PIN_KEY_FILE")
    return Settings(**data)  # type: ignore[arg-type]  # values by field name; __post_init__ checks them


def settings_file(path: str | Path | None, env: Mapping[str, str]) -> Path | None:
    """The file named by ``--config``, else ``$HOTSPOT_CONFIG``, else the default one when present."""
    if path:
        return Path(path)
    if env.get("HOTSPOT_CONFIG"):
        return Path(env["HOTSPOT_CONFIG"])
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.exists() else None


def split_flat_settings(
    values: Mapping[str, object], own_names: set[str], section: str
) -> tuple[Settings, dict[str, object]]:
    """One flat mapping (tests, the CLI) of the shared settings' names and one web app's own: the shared
    settings, and the app's values."""
    core_names = {f.name for f in fields(Settings)}
    unknown = set(values) - core_names - own_names
    if unknown:
        raise SettingsError(f"unknown {section} setting(s): {', '.join(sorted(unknown))}")
    core = {k: v for k, v in values.items() if k in core_names}
    if "pin_key_file" in core:
        core["pin_key_file"] = Path(str(core["pin_key_file"]))
    return Settings(**core), {k: v for k, v in values.items() if k in own_names}  # type: ignore[arg-type]


@dataclass(frozen=True)
class WebSection:
    """How one web app's ``[name]`` section is read: the environment variables over it (variable ->
    setting), the settings that text from the environment turns into whole numbers, and what the app
    fixes or checks in the values before its settings are built."""

    name: str
    env_names: Mapping[str, str]
    whole_numbers: tuple[str, ...] = ()
    prepare: Callable[[dict[str, object]], None] | None = None


def load_web_settings(
    build: Callable[..., AppSettings],
    section: WebSection,
    path: str | Path | None,
    environ: Mapping[str, str] | None,
    *,
    overrides: Mapping[str, object] | None,
    default_secret_key: str | None,
) -> AppSettings:
    """A web app's settings (the portal's, the console's): the shared ones as `core`, then its section's
    values: its ``secret_key_file`` read (a relative path is beside the settings file), then the
    environment, then the caller's `overrides` (command-line options); `default_secret_key` only when none
    is configured. Text from the environment becomes the flag ``cookie_secure`` or a whole number; a
    missing cookie secret or an unknown setting is refused with the setting to fix."""
    env = dict(os.environ if environ is None else environ)
    core = load_settings(path, env)
    chosen = settings_file(path, env)
    name = section.name
    table = _section(chosen, name) if chosen else {}
    values: dict[str, object] = {k: v for k, v in table.items() if k != "secret_key_file"}
    if "secret_key_file" in table and chosen is not None:
        key_path = Path(str(table["secret_key_file"]))
        key_path = key_path if key_path.is_absolute() else chosen.parent / key_path
        try:
            values["secret_key"] = key_path.read_text().strip()
        except OSError as exc:
            raise SettingsError(f"{name} secret key file {key_path}: {exc.strerror}") from None
    values.update({setting: env[var] for var, setting in section.env_names.items() if env.get(var)})
    values.update(overrides or {})
    if default_secret_key and "secret_key" not in values:
        values["secret_key"] = default_secret_key
    if "secret_key" not in values:
        variable = next(var for var, setting in section.env_names.items() if setting == "secret_key")
        raise SettingsError(f"no cookie secret: set {name}.secret_key_file or {variable}")
    if isinstance(values.get("cookie_secure"), str):
        values["cookie_secure"] = str(values["cookie_secure"]).lower() not in ("0", "false", "no", "off")
    for whole in section.whole_numbers:
        if isinstance(values.get(whole), str):
            try:
                values[whole] = int(str(values[whole]))
            except ValueError:
                raise SettingsError(f"{name}.{whole}: {values[whole]!r} is not a whole number") from None
    if section.prepare:
        section.prepare(values)
    try:
        return build(core=core, **values)
    except TypeError as exc:
        raise SettingsError(f"[{name}]: {exc}") from None


def _section(path: Path, name: str) -> dict[str, object]:
    try:
        return dict(tomllib.loads(path.read_text()).get(name, {}))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"settings file {path}: {exc}") from exc


def _read_file(path: Path) -> dict[str, object]:
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise SettingsError(f"settings file {path} not found") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"settings file {path} is not valid TOML: {exc}") from exc
    database = raw.get("database", {})
    pins = raw.get("pins", {})
    portal = raw.get("portal", {})
    security = raw.get("security", {})
    radius = raw.get("radius", {})
    data: dict[str, object] = {}
    for section, key, field, kind in (
        (database, "url", "database_url", str),
        (database, "statement_timeout_ms", "statement_timeout_ms", int),
        (database, "connect_timeout_s", "connect_timeout_s", int),
        (database, "transaction_pooling", "transaction_pooling", bool),
        (pins, "key_file", "pin_key_file", Path),
        (pins, "mode", "pin_mode", str),
        (portal, "url", "portal_url", str),
        (security, "lockout_attempts", "lockout_attempts", int),
        (security, "lockout_window_s", "lockout_window_s", int),
        (security, "pending_session_ttl_s", "pending_session_ttl_s", int),
        (radius, "metrics_address", "radius_metrics_address", str),
        (radius, "metrics_port", "radius_metrics_port", int),
    ):
        if key in section:
            value = section[key]
            if kind is int and not isinstance(value, int):
                raise SettingsError(f"{path}: {key} must be an integer")
            if kind is bool and not isinstance(value, bool):
                raise SettingsError(f"{path}: {key} must be true or false")
            data[field] = kind(value)
    if "pin_key_file" in data and not Path(str(data["pin_key_file"])).is_absolute():
        data["pin_key_file"] = (path.parent / str(data["pin_key_file"])).resolve()
    return data


def with_overrides(settings: Settings, **changes: object) -> Settings:
    """A copy with some values replaced (tests, the demo)."""
    return replace(settings, **changes)  # type: ignore[arg-type]  # the caller names fields; __post_init__ checks values
