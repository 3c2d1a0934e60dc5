"""Queries about staff accounts and their console sessions (sql/019_console.sql)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rlm_hotspot.db.catalog import DuplicateError


@dataclass(frozen=True)
class StaffRecord:
    id: int
    name: str
    role: str
    password_hash: str
    active: bool
    created_at: datetime
    totp_secret: bytes | None  # sealed (sql/020_staff_totp.sql)
    totp_key_id: int | None
    totp_last_step: int | None

    @property
    def has_totp(self) -> bool:
        return self.totp_secret is not None


_COLUMNS = "id, name, role, password_hash, active, created_at, totp_secret, totp_key_id, totp_last_step"


def _record(row: Row[Any]) -> StaffRecord:
    """A row as a record; bytea arrives as a memoryview, which the PIN vault does not take."""
    values = dict(row._mapping)
    if values["totp_secret"] is not None:
        values["totp_secret"] = bytes(values["totp_secret"])
    return StaffRecord(**values)


def insert_staff(db: Session, *, name: str, role: str, password_hash: str, now: datetime) -> int:
    try:
        with db.begin_nested():
            return int(
                db.execute(
                    text(
                        "INSERT INTO staff (name, role, password_hash, created_at, password_changed_at) "
                        "VALUES (:name, :role, :hash, :now, :now) RETURNING id"
                    ),
                    {"name": name, "role": role, "hash": password_hash, "now": now},
                ).scalar_one()
            )
    except IntegrityError:
        raise DuplicateError(f"staff account {name!r} already exists") from None


def staff_by_name(db: Session, name: str) -> StaffRecord | None:
    row = db.execute(text(f"SELECT {_COLUMNS} FROM staff WHERE name = :name"), {"name": name}).first()
    return None if row is None else _record(row)


def staff_list(db: Session) -> list[StaffRecord]:
    return [_record(r) for r in db.execute(text(f"SELECT {_COLUMNS} FROM staff ORDER BY name"))]


def update_staff(db: Session, staff_id: int, *, now: datetime, **values: object) -> None:
    """Change role, active or password_hash (a new password also dates password_changed_at)."""
    allowed = {"role", "active", "password_hash"}
    assert set(values) <= allowed, values
    assignments = ", ".join(f"{name} = :{name}" for name in values)
    if "password_hash" in values:
        assignments += ", password_changed_at = :now"
    db.execute(text(f"UPDATE staff SET {assignments} WHERE id = :id"), {"id": staff_id, "now": now, **values})


def set_totp(db: Session, staff_id: int, sealed: bytes | None, key_id: int | None) -> None:
    db.execute(
        text("UPDATE staff SET totp_secret = :sealed, totp_key_id = :key_id, totp_last_step = NULL WHERE id = :id"),
        {"id": staff_id, "sealed": sealed, "key_id": key_id},
    )


def use_totp_step(db: Session, staff_id: int, step: int) -> bool:
    """Take a time step for a sign-in; False if it (or a later one) was used already: one code, one use."""
    row = db.execute(
        text(
            "UPDATE staff SET totp_last_step = :step WHERE id = :id "
            "AND (totp_last_step IS NULL OR totp_last_step < :step) RETURNING id"
        ),
        {"id": staff_id, "step": step},
    ).first()
    return row is not None


def end_sessions_of(db: Session, staff_id: int, now: datetime) -> None:
    db.execute(
        text("UPDATE staff_sessions SET ended_at = :now WHERE staff_id = :id AND ended_at IS NULL"),
        {"id": staff_id, "now": now},
    )


def insert_session(db: Session, *, token_hash: bytes, staff_id: int, client: str, now: datetime) -> None:
    db.execute(
        text(
            "INSERT INTO staff_sessions (token_hash, staff_id, created_at, last_seen_at, client) "
            "VALUES (:hash, :staff_id, :now, :now, :client)"
        ),
        {"hash": token_hash, "staff_id": staff_id, "now": now, "client": client},
    )


def touch_session(db: Session, token_hash: bytes, now: datetime, idle_s: int) -> StaffRecord | None:
    """The active account of a session not ended and not idle for `idle_s`; moves its last_seen_at."""
    row = db.execute(
        text(
            f"""UPDATE staff_sessions ss SET last_seen_at = :now
                FROM staff s
                WHERE ss.token_hash = :hash AND s.id = ss.staff_id AND s.active AND ss.ended_at IS NULL
                  AND ss.last_seen_at > :now - make_interval(secs => :idle)
                RETURNING {", ".join("s." + c.strip() for c in _COLUMNS.split(","))}"""
        ),
        {"hash": token_hash, "now": now, "idle": idle_s},
    ).first()
    return None if row is None else _record(row)


def end_session(db: Session, token_hash: bytes, now: datetime) -> None:
    db.execute(
        text("UPDATE staff_sessions SET ended_at = :now WHERE token_hash = :hash AND ended_at IS NULL"),
        {"hash": token_hash, "now": now},
    )
