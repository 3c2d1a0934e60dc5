"""The rlm_python3 entry points (`module = rlm_hotspot.radius.hooks`), for FreeRADIUS 3.2 on Debian.

Importing this module loads nothing but the standard library and `radiusd`: `instantiate` first puts the
project's venv in front of Debian's packages (see bootstrap), then loads the adapter. The module's
`config { }` block names the settings file (`settings = /etc/rlm-hotspot/hotspot.toml`), the buffered
accounting's detail file whose backlog the metrics report (`buffer = ...`) and, optionally, the venv
(`venv = /opt/rlm-hotspot/.venv`). Hooks receive the dict of lists (`pass_all_vps_dict = yes`).
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

import radiusd

from rlm_hotspot.radius import bootstrap

if TYPE_CHECKING:
    from rlm_hotspot.radius.adapter import HookResult, RadiusAdapter

_adapter: RadiusAdapter | None = None


def instantiate(_: object) -> int:
    """Start-up (also under `radiusd -C`): a negative result is the only way to abort radiusd's start."""
    global _adapter  # noqa: PLW0603 - radiusd keeps no state for us; the adapter lives for the process
    config = getattr(radiusd, "config", None) or {}
    try:
        bootstrap.activate(bootstrap.venv_site_packages(config.get("venv")))
        from rlm_hotspot.pins import PinKeyError  # noqa: PLC0415
        from rlm_hotspot.radius.adapter import RadiusAdapter, StartupError  # noqa: PLC0415 - after the venv
        from rlm_hotspot.radius.metrics import checking_config, process_argv  # noqa: PLC0415
        from rlm_hotspot.settings import SettingsError, load_settings  # noqa: PLC0415
    except Exception as exc:
        radiusd.radlog(radiusd.L_ERR, f"rlm_hotspot: cannot load the project's Python packages: {exc}")
        return -1
    if not config.get("settings"):
        radiusd.radlog(radiusd.L_ERR, "rlm_hotspot: the module's config { } block has no `settings = <file>`")
        return -1
    buffer_file = Path(config["buffer"]) if config.get("buffer") else None
    try:
        settings = load_settings(config["settings"], environ={})
        _adapter = RadiusAdapter.start(radiusd, settings, buffer_file)
    except (SettingsError, PinKeyError, StartupError) as exc:
        radiusd.radlog(radiusd.L_ERR, f"rlm_hotspot: cannot start: {exc}")
        return -1
    except Exception:
        radiusd.radlog(radiusd.L_ERR, f"rlm_hotspot: cannot start: {traceback.format_exc()}")
        return -1
    if not checking_config(process_argv()):  # `radiusd -C` runs next to the live server: leave it the port
        _adapter.serve_metrics(settings.radius_metrics_address, settings.radius_metrics_port)
    radiusd.radlog(radiusd.L_INFO, f"rlm_hotspot: ready (settings {config['settings']})")
    return 0


def authorize(lists: dict[str, Any]) -> HookResult:
    return _running().authorize(lists)


def accounting(lists: dict[str, Any]) -> HookResult:
    return _running().accounting(lists)


def detach(_: object) -> int:
    global _adapter  # noqa: PLW0603
    if _adapter is not None:
        _adapter.close()
        _adapter = None
    return 0


def _running() -> RadiusAdapter:
    if _adapter is None:  # radiusd never calls a hook after a failed instantiate; a stub test might
        raise RuntimeError("rlm_hotspot: hook called before instantiate succeeded")
    return _adapter
