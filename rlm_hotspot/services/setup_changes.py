"""Changing a tariff, hotspot or NAS that exists (the console's Setup page); creating them is
`services.catalog`'s add_tariff, add_hotspot and add_nas, as for the CLI.

A change is checked by the rules the catalog applies when the thing is made: a tariff's new prices by the
core tariff (units, increments) and "prices something"; a hotspot's time zone and tariff, a NAS's address,
secret, port and vendor by the same tests. Every argument left None stays as it is. A running RADIUS
server sees a tariff's new prices within its cache's lifetime (30 s, services/tariff_cache.py).
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.orm import Session

from rlm_hotspot.db import setup_changes as q
from rlm_hotspot.db.catalog import DuplicateError
from rlm_hotspot.services.catalog import NAS_VENDORS, core_tariff, get_hotspot, get_tariff
from rlm_hotspot.services.errors import NotFound, ServiceError


def set_tariff_prices(
    session: Session,
    name: str,
    *,
    time_price: int | None = None,
    time_unit_seconds: int | None = None,
    traffic_price: int | None = None,
    traffic_unit_bytes: int | None = None,
    simultaneous_use: int | None = None,
) -> dict[str, object]:
    """New prices (the bands and free networks stay); returns the columns changed."""
    stored = get_tariff(session, name)
    changes = _given(
        time_price=time_price,
        time_unit_seconds=time_unit_seconds,
        traffic_price=traffic_price,
        traffic_unit_bytes=traffic_unit_bytes,
        simultaneous_use=simultaneous_use,
    )
    spec = replace(stored.spec, **changes)  # type: ignore[arg-type]
    if spec.simultaneous_use < 1:
        raise ServiceError("simultaneous use must be at least 1")
    if min(spec.time_price, spec.traffic_price) < 0:
        raise ServiceError("a price cannot be negative")
    try:
        tariff = core_tariff(spec)
    except ValueError as exc:
        raise ServiceError(str(exc)) from None
    if not any(band.time_price or band.traffic_price for band in tariff.cycle):
        raise ServiceError("a tariff must price time, traffic or both (all prices are zero)")
    if changes:
        q.update_tariff(session, stored.id, changes)
    return changes


def set_hotspot(
    session: Session,
    name: str,
    *,
    tariff: str | None = None,
    timezone: str | None = None,
    portal_url: str | None = None,
) -> dict[str, object]:
    """Another tariff, time zone or portal address (empty text: none) for a hotspot; returns the changes."""
    hotspot = get_hotspot(session, name)
    changes: dict[str, object] = {}
    if tariff is not None:
        changes["tariff_id"] = get_tariff(session, tariff).id
    if timezone is not None:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ServiceError(f"unknown time zone {timezone!r}: use an IANA name like Europe/Moscow") from None
        changes["timezone"] = timezone
    if portal_url is not None:
        changes["portal_url"] = portal_url.strip() or None
    if changes:
        q.update_hotspot(session, hotspot.id, changes)
    return changes


def set_nas(
    session: Session,
    name: str,
    *,
    hotspot: str | None = None,
    ip_address: str | None = None,
    secret: str | None = None,
    coa_port: int | None = None,
    vendor: str | None = None,
) -> dict[str, object]:
    """Move a NAS to another hotspot or change its address, RADIUS secret, CoA port or vendor; returns the
    changes (the secret as a mere mention: it is never shown or written to the audit trail)."""
    nas = q.nas_by_name(session, name)
    if nas is None:
        raise NotFound(f"no NAS {name!r}")
    changes: dict[str, object] = {}
    if hotspot is not None:
        changes["hotspot_id"] = get_hotspot(session, hotspot).id
    if ip_address is not None:
        try:
            changes["ip_address"] = str(ipaddress.ip_address(ip_address.strip()))
        except ValueError:
            raise ServiceError(f"bad NAS address {ip_address!r}: give an IPv4 or IPv6 address") from None
    if secret is not None:
        if not secret:
            raise ServiceError("a NAS needs a RADIUS secret")
        changes["secret"] = secret
    if coa_port is not None:
        if not 1 <= coa_port <= 65535:
            raise ServiceError("the CoA port must be between 1 and 65535")
        changes["coa_port"] = coa_port
    if vendor is not None:
        if vendor not in NAS_VENDORS:
            raise ServiceError(f"vendor must be one of {', '.join(NAS_VENDORS)}")
        changes["vendor"] = vendor
    if changes:
        try:
            q.update_nas(session, nas.id, changes)
        except DuplicateError as exc:
            raise ServiceError(str(exc)) from None
    return {key: ("(changed)" if key == "secret" else value) for key, value in changes.items()}


def _given(**values: int | None) -> dict[str, object]:
    return {key: value for key, value in values.items() if value is not None}
