"""Changing a tariff, hotspot or NAS in place (the console's Setup page): one UPDATE of the named columns."""

from __future__ import annotations

from sqlalchemy import Row, Table, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rlm_hotspot.db import tables as t
from rlm_hotspot.db.catalog import DuplicateError


def _update(session: Session, table: Table, row_id: int, what: str, values: dict[str, object]) -> None:
    """A unique clash (a NAS address in use) becomes a clear error and leaves the transaction usable."""
    try:
        with session.begin_nested():
            session.execute(update(table).where(table.c.id == row_id).values(**values))
    except IntegrityError as exc:
        if "unique" in str(exc.orig).lower() or "duplicate" in str(exc.orig).lower():
            raise DuplicateError(f"another {what} has this name or address already") from None
        raise


def update_tariff(session: Session, tariff_id: int, values: dict[str, object]) -> None:
    _update(session, t.tariffs, tariff_id, "tariff", values)


def update_hotspot(session: Session, hotspot_id: int, values: dict[str, object]) -> None:
    _update(session, t.hotspots, hotspot_id, "hotspot", values)


def update_nas(session: Session, nas_id: int, values: dict[str, object]) -> None:
    _update(session, t.nas, nas_id, "NAS", values)


def nas_by_name(session: Session, name: str) -> Row | None:  # type: ignore[type-arg]
    return session.execute(select(t.nas).where(t.nas.c.name == name)).first()
