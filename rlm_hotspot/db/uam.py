"""The UAM handoff settings of a NAS (sql/004_nas_uam.sql), for the portal in RADIUS mode."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from rlm_hotspot.db import tables as t
from rlm_hotspot.db.engine import rows_changed
from rlm_hotspot.db.rows import one


@dataclass(frozen=True, slots=True)
class NasUam:
    name: str
    vendor: str  # mikrotik | chilli | wispr | generic
    hotspot_id: int
    uam_secret: str | None = field(repr=False)
    uam_login_url: str | None


def nas_uam(db: Session, name: str) -> NasUam | None:
    nas = t.nas.c
    query = select(nas.name, nas.vendor, nas.hotspot_id, nas.uam_secret, nas.uam_login_url).where(nas.name == name)
    return one(NasUam, db.execute(query).first())


def set_nas_uam(db: Session, name: str, uam_secret: str | None, uam_login_url: str | None) -> bool:
    done = db.execute(
        update(t.nas).where(t.nas.c.name == name).values(uam_secret=uam_secret, uam_login_url=uam_login_url)
    )
    return rows_changed(done) > 0
