"""Queries for PIN key rotation: which key seals what, and re-sealing a secret under another key."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Row, text
from sqlalchemy.orm import Session

# The first byte of a stored secret (rlm_hotspot.pins): 1 encrypted, 2 hashed.
_ENCRYPTED, _HASHED = 1, 2


@dataclass(frozen=True)
class KeyUse:
    """What one key id seals: encrypted and hashed card PINs, staff second-factor secrets."""

    key_id: int
    encrypted_cards: int
    hashed_cards: int
    totp_secrets: int

    @property
    def total(self) -> int:
        return self.encrypted_cards + self.hashed_cards + self.totp_secrets


@dataclass(frozen=True)
class Sealed:
    """One sealed secret: a card's PIN (its number is the associated data) or a staff account's TOTP secret."""

    id: int
    name: str
    key_id: int
    secret: bytes


_SEALED_CARDS = "SELECT id, number AS name, pin_key_id AS key_id, pin_secret AS secret FROM cards "


def _sealed(row: Row) -> Sealed:  # type: ignore[type-arg]
    return Sealed(row.id, row.name, row.key_id, bytes(row.secret))  # bytea arrives as a memoryview


def key_use(db: Session) -> list[KeyUse]:
    """Every key id something is sealed under, in id order."""
    rows = db.execute(
        text(
            "SELECT key_id, sum(encrypted)::bigint AS encrypted_cards, sum(hashed)::bigint AS hashed_cards, "
            "       sum(totp)::bigint AS totp_secrets FROM ("
            "  SELECT pin_key_id AS key_id, (get_byte(pin_secret, 0) = :encrypted)::int AS encrypted,"
            "         (get_byte(pin_secret, 0) = :hashed)::int AS hashed, 0 AS totp FROM cards"
            "  UNION ALL SELECT totp_key_id, 0, 0, 1 FROM staff WHERE totp_key_id IS NOT NULL"
            ") sealed GROUP BY key_id ORDER BY key_id"
        ),
        {"encrypted": _ENCRYPTED, "hashed": _HASHED},
    )
    return [KeyUse(**row._mapping) for row in rows]


def encrypted_cards_not_under(db: Session, key_id: int, *, after_id: int, limit: int) -> list[Sealed]:
    """The next `limit` encrypted cards (by id, after `after_id`) sealed under another key than `key_id`."""
    rows = db.execute(
        text(
            _SEALED_CARDS + "WHERE pin_key_id <> :key_id AND get_byte(pin_secret, 0) = :encrypted AND id > :after_id "
            "ORDER BY id LIMIT :limit"
        ),
        {"key_id": key_id, "encrypted": _ENCRYPTED, "after_id": after_id, "limit": limit},
    )
    return [_sealed(row) for row in rows]


def one_encrypted_card_under(db: Session, key_id: int) -> Sealed | None:
    """Any encrypted card sealed under `key_id` (to check that the key file's key opens it)."""
    row = db.execute(
        text(_SEALED_CARDS + "WHERE pin_key_id = :key_id AND get_byte(pin_secret, 0) = :encrypted LIMIT 1"),
        {"key_id": key_id, "encrypted": _ENCRYPTED},
    ).first()
    return None if row is None else _sealed(row)


def totp_secrets_not_under(db: Session, key_id: int) -> list[Sealed]:
    """Staff second-factor secrets sealed under another key than `key_id` (a few rows: staff accounts)."""
    rows = db.execute(
        text(
            "SELECT id, name, totp_key_id AS key_id, totp_secret AS secret FROM staff "
            "WHERE totp_key_id IS NOT NULL AND totp_key_id <> :key_id ORDER BY id"
        ),
        {"key_id": key_id},
    )
    return [_sealed(row) for row in rows]


# Where each kind of sealed secret lives: table, secret column, key id column.
_COLUMNS = {"card": ("cards", "pin_secret", "pin_key_id"), "totp": ("staff", "totp_secret", "totp_key_id")}


def reseal(db: Session, kind: str, key_id: int, resealed: list[tuple[Sealed, bytes]]) -> int:
    """Store new secrets under `key_id` (`kind` card or totp), each only where its old secret is still in place
    (a concurrent change wins); returns the rows changed."""
    table, secret, key = _COLUMNS[kind]
    statement = text(
        f"UPDATE {table} SET {secret} = :new_secret, {key} = :key_id "
        f"WHERE id = :id AND {key} = :old_key_id AND {secret} = :old_secret"
    )
    changed = 0
    for old, new_secret in resealed:
        result = db.execute(
            statement,
            {
                "new_secret": new_secret,
                "key_id": key_id,
                "id": old.id,
                "old_key_id": old.key_id,
                "old_secret": old.secret,
            },
        )
        changed += result.rowcount  # type: ignore[attr-defined]
    return changed
