"""Small builders for database tests: a tariff, a hotspot and a batch of cards, via the real services."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from rlm_hotspot.pins import PinVault
from rlm_hotspot.services import cards, catalog
from tests.conftest import NOW


def tariff(session: Session, name: str = "standard", **overrides: object) -> int:
    spec = catalog.TariffSpec(name=name, **{"time_price": 120, "time_unit_seconds": 3600, **overrides})
    return catalog.add_tariff(session, spec)


def hotspot(session: Session, name: str = "cafe", tariff_name: str = "standard", **overrides: object) -> int:
    return catalog.add_hotspot(
        session, catalog.HotspotSpec(name=name, timezone="Europe/Moscow", tariff=tariff_name, **overrides)
    )


def batch(
    session: Session,
    vault: PinVault,
    count: int = 3,
    face_value: int = 500,
    now: datetime = NOW,
    pin_mode: str = "encrypted",
    validity: timedelta | None = None,
    **overrides: object,
) -> cards.GeneratedBatch:
    spec = cards.BatchSpec(count=count, face_value=face_value, validity=validity, **overrides)
    return cards.generate_batch(session, vault, spec, now, pin_mode)


def world(session: Session, vault: PinVault, **batch_overrides: object) -> cards.GeneratedBatch:
    """A tariff, a hotspot and a batch of three 5.00 cards bound to it."""
    tariff(session)
    hotspot(session)
    return batch(session, vault, hotspot="cafe", **batch_overrides)
