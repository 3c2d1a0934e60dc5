"""The UAM handoff settings of a NAS (sql/004_nas_uam.sql), for the portal in RADIUS mode."""

from __future__ import annotations

from sqlalchemy import Row, select, update
from sqlalchemy.orm import Session

from rlm_hotspot.db import tables as t
from rlm_hotspot.db.engine import rows_changed


def nas_uam(session: Session, name: str) -> Row | None:  # type: ignore[type-arg]
    nas = t.nas.c
    query = select(nas.name, nas.vendor, nas.hotspot_id, nas.uam_secret, nas.uam_login_url).where(nas.name == name)
    return session.execute(query).first()


def set_nas_uam(session: Session, name: str, uam_secret: str | None, uam_login_url: str | None) -> bool:
    done = session.execute(
        update(t.nas).where(t.nas.c.name == name).values(uam_secret=uam_secret, uam_login_url=uam_login_url)
    )
    return rows_changed(done) > 0
