"""The portal's settings: the shared ones (database, PIN keys, lockout) plus what one portal process serves.

Read from the ``[portal]`` section of the same TOML file as the rest (``--config`` / ``$HOTSPOT_CONFIG``),
with environment overrides so ``hotspotctl portal run`` can hand its options to the gunicorn workers::

    [portal]
    url = "https://portal.example.net/"   # how guests reach the portal (RFC 8908 user-portal-url)
    hotspot = "airport"                    # the one hotspot this process serves
    secret_key_file = "portal.secret"      # signs cookies; shared by every worker (relative = beside the file)
    gate = "nftables"                      # standalone hotspots: none | nftables | opennds | command
    cookie_secure = true                   # false only for plain-HTTP tests and demos
    venue_info_url = "https://cafe.example/wifi"
    proxy_hops = 0                         # reverse proxies in front whose X-Forwarded-For is trusted
    heartbeat_write_delay_ms = 500         # heartbeats written together this often (0: each at once)
    [portal.gate_options]
    family = "inet"
    table = "captive"
    set = "allowed_clients"
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from rlm_hotspot.settings import Settings, SettingsError, WebSection, load_web_settings, split_flat_settings

MIN_SECRET_KEY_LENGTH = 32

MAX_HEARTBEAT_WRITE_DELAY_MS = 5000


@dataclass(frozen=True)
class PortalSettings:
    core: Settings
    hotspot: str
    secret_key: str
    gate: str = "none"
    gate_options: Mapping[str, str] = field(default_factory=dict)
    cookie_secure: bool = True
    heartbeat_interval_s: int | None = None  # None: a third of the hotspot's heartbeat timeout
    venue_info_url: str | None = None
    proxy_hops: int = 0
    # Heartbeats on a session this process already knows are rated in memory and posted together at
    # most this late (one statement for hundreds instead of one each); 0 posts each one at once.
    heartbeat_write_delay_ms: int = 500

    def __post_init__(self) -> None:
        if not self.hotspot.strip():
            raise SettingsError("portal.hotspot: name the hotspot this portal serves")
        if len(self.secret_key) < MIN_SECRET_KEY_LENGTH:
            raise SettingsError(f"portal secret key: at least {MIN_SECRET_KEY_LENGTH} characters are needed")
        if self.heartbeat_interval_s is not None and self.heartbeat_interval_s < 1:
            raise SettingsError("portal.heartbeat_interval_s must be at least 1 second")
        if self.proxy_hops < 0:
            raise SettingsError("portal.proxy_hops must not be negative")
        if not 0 <= self.heartbeat_write_delay_ms <= MAX_HEARTBEAT_WRITE_DELAY_MS:
            raise SettingsError(
                f"portal.heartbeat_write_delay_ms must be between 0 and {MAX_HEARTBEAT_WRITE_DELAY_MS} (0: at once)"
            )

    @property
    def public_url(self) -> str:
        return self.core.portal_url

    def heartbeat_interval(self, heartbeat_timeout: int) -> int:
        """Seconds between a page's heartbeats: configured, else a third of the hotspot's timeout (two may
        get lost)."""
        return self.heartbeat_interval_s or max(1, heartbeat_timeout // 3)

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> PortalSettings:
        """Build from one flat mapping (tests, the CLI): the shared settings' names plus the portal's."""
        core, own = split_flat_settings(values, {f.name for f in fields(cls)} - {"core"}, "portal")
        return cls(core=core, **own)  # type: ignore[arg-type]


def load_portal_settings(
    path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    overrides: Mapping[str, object] | None = None,
    default_secret_key: str | None = None,
) -> PortalSettings:
    """The settings file's shared part and ``[portal]`` section, the environment's overrides, then the
    caller's (command-line options); `default_secret_key` is used only when none is configured."""
    return load_web_settings(
        PortalSettings, _SECTION, path, environ, overrides=overrides, default_secret_key=default_secret_key
    )


def _portal_values(values: dict[str, object]) -> None:
    """The portal's own checks: `url` is the shared settings' portal_url, the gate's options are text,
    and one hotspot is named."""
    values.pop("url", None)
    gate_options = values.get("gate_options")
    if isinstance(gate_options, Mapping):
        values["gate_options"] = {str(k): str(v) for k, v in gate_options.items()}
    if "hotspot" not in values:
        raise SettingsError("no hotspot named: set portal.hotspot or HOTSPOT_PORTAL_HOTSPOT (--hotspot)")


_SECTION = WebSection(
    "portal",
    env_names={
        "HOTSPOT_PORTAL_HOTSPOT": "hotspot",
        "HOTSPOT_PORTAL_SECRET_KEY": "secret_key",
        "HOTSPOT_PORTAL_GATE": "gate",
        "HOTSPOT_PORTAL_COOKIE_SECURE": "cookie_secure",
        "HOTSPOT_PORTAL_HEARTBEAT_INTERVAL": "heartbeat_interval_s",
        "HOTSPOT_PORTAL_HEARTBEAT_WRITE_DELAY_MS": "heartbeat_write_delay_ms",
    },
    whole_numbers=("heartbeat_interval_s", "heartbeat_write_delay_ms"),
    prepare=_portal_values,
)
