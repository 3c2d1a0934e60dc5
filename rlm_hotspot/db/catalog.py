"""Queries about the installation, tariffs, hotspots and NAS."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import Table, delete, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rlm_hotspot.db import tables as t
from rlm_hotspot.db.engine import Executor
from rlm_hotspot.db.rows import every, one


class DuplicateError(ValueError):
    """A row with the same unique name/address already exists."""


@dataclass(frozen=True, slots=True)
class InstallationRecord:
    singleton: bool
    currency_code: str
    currency_exponent: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class TariffRecord:
    id: int
    name: str
    time_price: int
    time_unit_seconds: int
    time_increment_seconds: int
    traffic_price: int
    traffic_unit_bytes: int
    traffic_direction: str
    simultaneous_use: int
    rate_up_kbps: int | None
    rate_down_kbps: int | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class HotspotRecord:
    id: int
    name: str
    timezone: str
    tariff_id: int
    mode: str
    traffic_meter: str
    interim_interval: int
    idle_timeout: int | None
    stale_grace: int
    heartbeat: str
    heartbeat_timeout: int
    max_session_seconds: int
    max_rate_kbps: int
    hidden_grace: int
    portal_url: str | None
    terms_of_use: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ListedHotspot(HotspotRecord):
    tariff: str  # the tariff's name


@dataclass(frozen=True, slots=True)
class NasRecord:
    id: int
    hotspot_id: int
    name: str
    ip_address: str
    secret: str
    coa_port: int
    vendor: str
    created_at: datetime
    uam_secret: str | None
    uam_login_url: str | None
    rebooted_at: datetime | None
    require_message_authenticator: bool
    restart_seen_at: datetime | None  # 026: when radiusd answered its last Accounting-On/Off (buffered)


@dataclass(frozen=True, slots=True)
class ListedNas(NasRecord):
    hotspot: str  # the hotspot's name


def installation(db: Executor) -> InstallationRecord | None:
    return one(InstallationRecord, db.execute(select(t.installation)).first())


def insert_installation(db: Session, currency_code: str, exponent: int) -> None:
    db.execute(insert(t.installation).values(singleton=True, currency_code=currency_code, currency_exponent=exponent))


def _insert_unique(db: Session, table: Table, what: str, label: str, **values: object) -> int:
    """Insert inside a savepoint so a duplicate becomes a clear error and leaves the transaction usable."""
    try:
        with db.begin_nested():
            return int(db.execute(insert(table).values(**values).returning(table.c.id)).scalar_one())
    except IntegrityError as exc:
        if "unique" in str(exc.orig).lower() or "duplicate" in str(exc.orig).lower():
            raise DuplicateError(f"{what} {label!r} already exists") from None
        raise


def insert_tariff(
    db: Session,
    values: dict[str, object],
    bands: Sequence[tuple[int, int, int]],
    free_networks: Sequence[str],
) -> int:
    tariff_id = _insert_unique(db, t.tariffs, "tariff", str(values["name"]), **values)
    for start_minute, time_price, traffic_price in bands:
        db.execute(
            insert(t.tariff_bands).values(
                tariff_id=tariff_id, start_minute=start_minute, time_price=time_price, traffic_price=traffic_price
            )
        )
    for network in free_networks:
        db.execute(insert(t.tariff_free_networks).values(tariff_id=tariff_id, network=network))
    return tariff_id


def tariff_by_name(db: Executor, name: str) -> TariffRecord | None:
    return one(TariffRecord, db.execute(select(t.tariffs).where(t.tariffs.c.name == name)).first())


def tariff_by_id(db: Executor, tariff_id: int) -> TariffRecord | None:
    return one(TariffRecord, db.execute(select(t.tariffs).where(t.tariffs.c.id == tariff_id)).first())


def tariffs(db: Session) -> list[TariffRecord]:
    return every(TariffRecord, db.execute(select(t.tariffs).order_by(t.tariffs.c.id)))


def tariff_bands(db: Executor, tariff_id: int) -> list[tuple[int, int, int]]:
    rows = db.execute(
        select(t.tariff_bands.c.start_minute, t.tariff_bands.c.time_price, t.tariff_bands.c.traffic_price)
        .where(t.tariff_bands.c.tariff_id == tariff_id)
        .order_by(t.tariff_bands.c.start_minute)
    )
    return [(r.start_minute, r.time_price, r.traffic_price) for r in rows]


def tariff_free_networks(db: Executor, tariff_id: int) -> list[str]:
    rows = db.execute(select(t.tariff_free_networks.c.network).where(t.tariff_free_networks.c.tariff_id == tariff_id))
    return sorted(str(r.network) for r in rows)


def insert_hotspot(db: Session, **values: object) -> int:
    return _insert_unique(db, t.hotspots, "hotspot", str(values["name"]), **values)


def hotspot_by_name(db: Executor, name: str) -> HotspotRecord | None:
    return one(HotspotRecord, db.execute(select(t.hotspots).where(t.hotspots.c.name == name)).first())


def hotspot_by_id(db: Session, hotspot_id: int) -> HotspotRecord | None:
    return one(HotspotRecord, db.execute(select(t.hotspots).where(t.hotspots.c.id == hotspot_id)).first())


def hotspots(db: Session) -> list[ListedHotspot]:
    query = select(t.hotspots, t.tariffs.c.name.label("tariff")).join(
        t.tariffs, t.tariffs.c.id == t.hotspots.c.tariff_id
    )
    return every(ListedHotspot, db.execute(query.order_by(t.hotspots.c.id)))


def insert_nas(db: Session, **values: object) -> int:
    try:
        return _insert_unique(db, t.nas, "NAS", str(values["name"]), **values)
    except DuplicateError:
        raise DuplicateError(
            f"a NAS named {values['name']!r} or with address {values['ip_address']} already exists"
        ) from None


def nas_list(db: Session) -> list[ListedNas]:
    query = select(t.nas, t.hotspots.c.name.label("hotspot")).join(t.hotspots, t.hotspots.c.id == t.nas.c.hotspot_id)
    return every(ListedNas, db.execute(query.order_by(t.nas.c.id)))


def nas_by_name(db: Session, name: str) -> NasRecord | None:
    return one(NasRecord, db.execute(select(t.nas).where(t.nas.c.name == name)).first())


# The catalog's tables a service changes or removes rows of, by name (the services know no Table).
CatalogTable = Literal["tariffs", "hotspots", "nas"]
_CATALOG_TABLES: dict[CatalogTable, Table] = {"tariffs": t.tariffs, "hotspots": t.hotspots, "nas": t.nas}


def update_row(db: Session, name: CatalogTable, row_id: int, what: str, label: str, **values: object) -> None:
    """Change some columns of one row inside a savepoint, so that a duplicate name or address becomes a
    clear error and leaves the transaction usable."""
    table = _CATALOG_TABLES[name]
    try:
        with db.begin_nested():
            db.execute(update(table).where(table.c.id == row_id).values(**values))
    except IntegrityError as exc:
        if "unique" in str(exc.orig).lower() or "duplicate" in str(exc.orig).lower():
            raise DuplicateError(f"another {what} already has that name or address ({label!r} unchanged)") from None
        raise


# Every foreign key that points at a table and does not cascade: the rows that keep one of its rows alive.
# Read from PostgreSQL's catalog, so that tables added by later migrations count without a change here.
_REFERRERS = """
    SELECT format('%I', c.conrelid::regclass) AS referrer, format('%I', a.attname) AS column_name
    FROM pg_constraint c
    JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
    WHERE c.contype = 'f' AND c.confrelid = CAST(:target AS regclass) AND c.confdeltype <> 'c'
    ORDER BY 1, 2"""


def referrers(db: Session, name: CatalogTable, row_id: int) -> dict[str, int]:
    """How many rows of each other table refer to this row (only those that do). The row is locked first
    (FOR UPDATE): no new reference to it can appear before the transaction ends."""
    table = _CATALOG_TABLES[name]
    db.execute(select(table.c.id).where(table.c.id == row_id).with_for_update())
    counts: dict[str, int] = {}
    for ref in db.execute(text(_REFERRERS), {"target": table.name}):
        found = db.execute(
            text(f"SELECT count(*) FROM {ref.referrer} WHERE {ref.column_name} = :id"), {"id": row_id}
        ).scalar_one()
        if found:
            counts[ref.referrer] = counts.get(ref.referrer, 0) + int(found)
    return counts


def delete_row(db: Session, name: CatalogTable, row_id: int) -> None:
    table = _CATALOG_TABLES[name]
    db.execute(delete(table).where(table.c.id == row_id))
