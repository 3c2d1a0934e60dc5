"""Use cases for the installation, tariffs, hotspots and NAS (admin side)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.orm import Session

from rlm_hotspot.core.money import Currency
from rlm_hotspot.core.networks import parse_networks
from rlm_hotspot.core.tariff import Band, Tariff, TrafficDirection
from rlm_hotspot.db import catalog as q
from rlm_hotspot.db.engine import Executor
from rlm_hotspot.services.errors import NotFound, ServiceError

NAS_VENDORS = ("mikrotik", "chilli", "wispr", "generic")


def init_installation(db: Session, currency_code: str, exponent: int) -> Currency:
    """Fix the installation's currency once; a second call with another currency is refused."""
    code = currency_code.strip().upper()
    if len(code) != 3 or not code.isalpha():
        raise ServiceError(f"bad currency code {currency_code!r}: use three letters, e.g. EUR")
    if not 0 <= exponent <= 4:
        raise ServiceError("currency decimals must be between 0 and 4")
    existing = q.installation(db)
    if existing is None:
        q.insert_installation(db, code, exponent)
        return Currency(code, exponent)
    if (existing.currency_code, existing.currency_exponent) != (code, exponent):
        raise ServiceError(
            f"the installation already uses {existing.currency_code} with {existing.currency_exponent} "
            "decimals; the currency cannot change once set"
        )
    return Currency(code, exponent)


def currency(db: Executor) -> Currency:
    row = q.installation(db)
    if row is None:
        raise ServiceError("the database is not initialised: run `hotspotctl db init` first")
    return Currency(row.currency_code, row.currency_exponent)


@dataclass(frozen=True)
class TariffSpec:
    """A tariff as an admin describes it; prices already in minor units."""

    name: str
    time_price: int = 0
    time_unit_seconds: int = 60
    time_increment_seconds: int = 1
    traffic_price: int = 0
    traffic_unit_bytes: int = 1_000_000
    traffic_direction: str = "total"
    bands: tuple[Band, ...] = ()
    free_networks: tuple[str, ...] = ()
    simultaneous_use: int = 1
    rate_up_kbps: int | None = None
    rate_down_kbps: int | None = None


def add_tariff(db: Session, spec: TariffSpec) -> int:
    if not spec.name.strip():
        raise ServiceError("a tariff needs a name")
    if spec.simultaneous_use < 1:
        raise ServiceError("simultaneous use must be at least 1")
    try:
        tariff = core_tariff(spec)  # the core validates units, increments and bands
        networks = [str(n) for n in parse_networks(spec.free_networks)]
    except ValueError as exc:
        raise ServiceError(str(exc)) from None
    if not any(band.time_price or band.traffic_price for band in tariff.cycle):
        raise ServiceError("a tariff must price time, traffic or both (all prices are zero)")
    values = {
        "name": spec.name.strip(),
        "time_price": spec.time_price,
        "time_unit_seconds": spec.time_unit_seconds,
        "time_increment_seconds": spec.time_increment_seconds,
        "traffic_price": spec.traffic_price,
        "traffic_unit_bytes": spec.traffic_unit_bytes,
        "traffic_direction": spec.traffic_direction,
        "simultaneous_use": spec.simultaneous_use,
        "rate_up_kbps": spec.rate_up_kbps,
        "rate_down_kbps": spec.rate_down_kbps,
    }
    bands = [(b.start_minute, b.time_price, b.traffic_price) for b in spec.bands]
    try:
        return q.insert_tariff(db, values, bands, networks)
    except q.DuplicateError as exc:
        raise ServiceError(str(exc)) from None


def core_tariff(spec: TariffSpec) -> Tariff:
    """The pure-core tariff used for rating."""
    if spec.traffic_direction not in {d.value for d in TrafficDirection}:
        raise ValueError(f"traffic direction must be download, upload or total, not {spec.traffic_direction!r}")
    return Tariff(
        time_price=spec.time_price,
        time_unit_seconds=spec.time_unit_seconds,
        time_increment_seconds=spec.time_increment_seconds,
        traffic_price=spec.traffic_price,
        traffic_unit_bytes=spec.traffic_unit_bytes,
        traffic_direction=TrafficDirection(spec.traffic_direction),
        bands=tuple(spec.bands),
    )


@dataclass(frozen=True)
class StoredTariff:
    id: int
    spec: TariffSpec
    tariff: Tariff = field(repr=False)


def get_tariff(db: Executor, name_or_id: str | int) -> StoredTariff:
    row = q.tariff_by_id(db, name_or_id) if isinstance(name_or_id, int) else q.tariff_by_name(db, name_or_id)
    if row is None:
        raise NotFound(f"no tariff {name_or_id!r}")
    spec = TariffSpec(
        name=row.name,
        time_price=row.time_price,
        time_unit_seconds=row.time_unit_seconds,
        time_increment_seconds=row.time_increment_seconds,
        traffic_price=row.traffic_price,
        traffic_unit_bytes=row.traffic_unit_bytes,
        traffic_direction=row.traffic_direction,
        bands=tuple(Band(*b) for b in q.tariff_bands(db, row.id)),
        free_networks=tuple(q.tariff_free_networks(db, row.id)),
        simultaneous_use=row.simultaneous_use,
        rate_up_kbps=row.rate_up_kbps,
        rate_down_kbps=row.rate_down_kbps,
    )
    return StoredTariff(row.id, spec, core_tariff(spec))


def list_tariffs(db: Session) -> list[StoredTariff]:
    return [get_tariff(db, row.id) for row in q.tariffs(db)]


def set_tariff(
    db: Session,
    name: str,
    *,
    simultaneous_use: int | None = None,
    rate_up_kbps: int | None = None,
    rate_down_kbps: int | None = None,
) -> list[str]:
    """Change what a tariff allows, never what it charges: sessions are billed from their cumulative
    counters at their tariff's prices, so a price changed in place would re-price usage already billed.
    A rate of 0 removes the limit. Returns the names of the settings that changed."""
    stored = get_tariff(db, name)
    values: dict[str, object] = {}
    if simultaneous_use is not None:
        if simultaneous_use < 1:
            raise ServiceError("simultaneous use must be at least 1")
        values["simultaneous_use"] = simultaneous_use
    for setting, rate in (("rate_up_kbps", rate_up_kbps), ("rate_down_kbps", rate_down_kbps)):
        if rate is not None:
            if rate < 0:
                raise ServiceError("a rate limit is a number of kbit/s, or 0 for none")
            values[setting] = rate or None
    values = {setting: value for setting, value in values.items() if getattr(stored.spec, setting) != value}
    if values:
        _update(db, "tariffs", stored.id, "tariff", stored.spec.name, values)
    return sorted(values)


def remove_tariff(db: Session, name: str) -> None:
    """Remove a tariff nothing refers to (no hotspot, card batch or session uses it)."""
    stored = get_tariff(db, name)
    _refuse_while_referred(db, "tariffs", stored.id, f"tariff {stored.spec.name!r}")
    q.delete_row(db, "tariffs", stored.id)


@dataclass(frozen=True)
class HotspotSpec:
    name: str
    timezone: str
    tariff: str
    mode: str = "radius"
    traffic_meter: str = "radius"
    interim_interval: int = 300
    idle_timeout: int | None = None
    heartbeat: str = "on"
    heartbeat_timeout: int = 90
    hidden_grace: int = 600
    max_rate_kbps: int = 1_000_000  # the most one guest can move each way: the bound on bytes (billing.md)
    portal_url: str | None = None


def add_hotspot(db: Session, spec: HotspotSpec) -> int:
    _check_hotspot(spec)
    tariff = get_tariff(db, spec.tariff)
    try:
        return q.insert_hotspot(
            db,
            name=spec.name.strip(),
            timezone=spec.timezone,
            tariff_id=tariff.id,
            mode=spec.mode,
            traffic_meter=spec.traffic_meter,
            interim_interval=spec.interim_interval,
            idle_timeout=spec.idle_timeout,
            heartbeat=spec.heartbeat,
            heartbeat_timeout=spec.heartbeat_timeout,
            hidden_grace=spec.hidden_grace,
            max_rate_kbps=spec.max_rate_kbps,
            portal_url=spec.portal_url,
        )
    except q.DuplicateError as exc:
        raise ServiceError(str(exc)) from None


def _check_hotspot(spec: HotspotSpec) -> None:
    """The rules a hotspot's settings obey, for a new one and for a change alike."""
    if not spec.name.strip():
        raise ServiceError("a hotspot needs a name")
    try:
        ZoneInfo(spec.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ServiceError(f"unknown time zone {spec.timezone!r}: use an IANA name like Europe/Moscow") from None
    if spec.mode not in ("radius", "standalone"):
        raise ServiceError("mode must be radius or standalone")
    if spec.traffic_meter not in ("radius", "netflow"):
        raise ServiceError("traffic meter must be radius or netflow")
    if spec.mode == "standalone" and spec.traffic_meter == "radius":
        raise ServiceError("a standalone hotspot has no RADIUS accounting: meter its traffic with netflow")
    if spec.interim_interval < 60:
        raise ServiceError("the interim interval must be at least 60 s (RFC 2869)")
    if spec.heartbeat not in ("on", "off", "grace"):
        raise ServiceError("heartbeat must be on, off or grace")
    if spec.heartbeat_timeout < 10:
        raise ServiceError("the heartbeat timeout must be at least 10 s")
    if spec.hidden_grace < 0:
        raise ServiceError("the hidden grace cannot be negative")
    if spec.max_rate_kbps < 1:
        raise ServiceError("the line rate must be at least 1 kbit/s")


# What `hotspot set` may change. The mode is not among them: the sessions open at a hotspot were opened by
# its NAS or by its portal, and would be ended by the other's rules.
HOTSPOT_SETTINGS = (
    "timezone",
    "tariff",
    "traffic_meter",
    "interim_interval",
    "idle_timeout",
    "heartbeat",
    "heartbeat_timeout",
    "hidden_grace",
    "max_rate_kbps",
    "portal_url",
)


def set_hotspot(db: Session, name: str, **changes: object) -> dict[str, tuple[object, object]]:
    """Change some settings of a hotspot; returns each changed setting's old and new value. A new tariff
    applies to sessions that start from now on: an open session keeps the tariff it was opened with, so
    nothing already used is priced again."""
    unknown = set(changes) - set(HOTSPOT_SETTINGS)
    if unknown:
        raise ServiceError(f"a hotspot has no setting {', '.join(sorted(unknown))}")
    row = get_hotspot(db, name)
    current = {setting: getattr(row, setting) for setting in HOTSPOT_SETTINGS if setting != "tariff"}
    current["tariff"] = get_tariff(db, row.tariff_id).spec.name
    spec = HotspotSpec(name=row.name, mode=row.mode, **{**current, **changes})
    _check_hotspot(spec)
    changed = {setting: (current[setting], value) for setting, value in changes.items() if current[setting] != value}
    values = {setting: new for setting, (_old, new) in changed.items() if setting != "tariff"}
    if "tariff" in changed:
        values["tariff_id"] = get_tariff(db, spec.tariff).id
    if values:
        _update(db, "hotspots", row.id, "hotspot", row.name, values)
    return changed


def remove_hotspot(db: Session, name: str) -> None:
    """Remove a hotspot nothing refers to (no NAS, card batch, session, login attempt, ...)."""
    row = get_hotspot(db, name)
    _refuse_while_referred(db, "hotspots", row.id, f"hotspot {row.name!r}")
    q.delete_row(db, "hotspots", row.id)


def _update(db: Session, table: q.CatalogTable, row_id: int, what: str, label: str, values: dict[str, object]) -> None:
    try:
        q.update_row(db, table, row_id, what, label, **values)
    except q.DuplicateError as exc:
        raise ServiceError(str(exc)) from None


def _refuse_while_referred(db: Session, table: q.CatalogTable, row_id: int, what: str) -> None:
    found = q.referrers(db, table, row_id)
    if found:
        uses = ", ".join(f"{count} row(s) of {referrer}" for referrer, count in found.items())
        raise ServiceError(f"{what} is still referred to by {uses}: nothing removed (history is kept, not deleted)")


def get_hotspot(db: Session, name: str) -> q.HotspotRecord:
    row = q.hotspot_by_name(db, name)
    if row is None:
        raise NotFound(f"no hotspot {name!r}")
    return row


def list_hotspots(db: Session) -> list[q.ListedHotspot]:
    return q.hotspots(db)


def add_nas(
    db: Session,
    *,
    name: str,
    hotspot: str,
    ip_address: str,
    secret: str,
    coa_port: int,
    vendor: str,
    require_message_authenticator: bool = True,
) -> int:
    """Register a NAS. `require_message_authenticator` (the default) has radiusd drop its Access-Requests
    that lack the attribute, the BlastRADIUS mitigation FreeRADIUS 3.2.1 has (docs/radius.md)."""
    address = _check_nas(ip_address=ip_address, secret=secret, coa_port=coa_port, vendor=vendor)
    hotspot_row = get_hotspot(db, hotspot)
    try:
        return q.insert_nas(
            db,
            name=name,
            hotspot_id=hotspot_row.id,
            ip_address=address,
            secret=secret,
            coa_port=coa_port,
            vendor=vendor,
            require_message_authenticator=require_message_authenticator,
        )
    except q.DuplicateError as exc:
        raise ServiceError(str(exc)) from None


def _check_nas(*, ip_address: str, secret: str, coa_port: int, vendor: str) -> str:
    """The rules a NAS's settings obey; returns its address as PostgreSQL's inet spells it."""
    try:
        address = ipaddress.ip_address(ip_address)
    except ValueError:
        raise ServiceError(f"bad NAS address {ip_address!r}: give an IPv4 or IPv6 address") from None
    if vendor not in NAS_VENDORS:
        raise ServiceError(f"vendor must be one of {', '.join(NAS_VENDORS)}")
    if not secret:
        raise ServiceError("a NAS needs a RADIUS secret")
    if not 1 <= coa_port <= 65535:
        raise ServiceError("the CoA port must be between 1 and 65535")
    return str(address)


def get_nas(db: Session, name: str) -> q.NasRecord:
    row = q.nas_by_name(db, name)
    if row is None:
        raise NotFound(f"no NAS named {name!r}")
    return row


NAS_SETTINGS = ("hotspot", "ip_address", "secret", "coa_port", "vendor", "require_message_authenticator")
# what FreeRADIUS reads from clients.conf: a change needs `hotspotctl radius clients` and a restart
NAS_CLIENT_SETTINGS = ("ip_address", "secret", "require_message_authenticator")


def set_nas(db: Session, name: str, **changes: object) -> list[str]:
    """Change some settings of a NAS; returns the names of those that changed (never a secret's value).
    FreeRADIUS reads its clients from clients.conf: `hotspotctl radius clients` rewrites it."""
    unknown = set(changes) - set(NAS_SETTINGS)
    if unknown:
        raise ServiceError(f"a NAS has no setting {', '.join(sorted(unknown))}")
    row = get_nas(db, name)
    current: dict[str, object] = {setting: getattr(row, setting) for setting in NAS_SETTINGS if setting != "hotspot"}
    current["ip_address"] = str(row.ip_address)
    merged = {**current, **{k: v for k, v in changes.items() if k != "hotspot"}}
    # the stored settings, and the CLI's typed options by setting name
    checked = {setting: merged[setting] for setting in ("ip_address", "secret", "coa_port", "vendor")}
    merged["ip_address"] = _check_nas(**checked)  # type: ignore[arg-type]
    values = {setting: value for setting, value in merged.items() if current[setting] != value}
    if "hotspot" in changes:
        hotspot_id = get_hotspot(db, str(changes["hotspot"])).id
        if hotspot_id != row.hotspot_id:
            values["hotspot_id"] = hotspot_id
    if values:
        _update(db, "nas", row.id, "NAS", row.name, values)
    return sorted(setting.removesuffix("_id") for setting in values)


def remove_nas(db: Session, name: str) -> None:
    """Remove a NAS nothing refers to (no session was ever opened through it, nothing held from it)."""
    row = get_nas(db, name)
    _refuse_while_referred(db, "nas", row.id, f"NAS {row.name!r}")
    q.delete_row(db, "nas", row.id)


def list_nas(db: Session) -> list[q.ListedNas]:
    return q.nas_list(db)
