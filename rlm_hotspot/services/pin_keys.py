"""PIN key rotation: re-seal the secrets sealed under older keys under the current one, so an old key can go.

Each step re-seals a bounded batch in the caller's transaction, so a rotation of a million cards is many
short transactions: stopped at any point it has lost nothing (a card has its old or its new secret, both
readable while the key file holds both keys), and run again it goes on with what is left. A hashed PIN
cannot be re-sealed (the PIN itself is not known): it keeps its key until the card is gone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from rlm_hotspot.db import pin_keys as q
from rlm_hotspot.db.pin_keys import KeyUse
from rlm_hotspot.pins import PinKeyError, PinVault
from rlm_hotspot.services.errors import ServiceError
from rlm_hotspot.services.staff import totp_seal_name

DEFAULT_STEP = 1000


@dataclass(frozen=True)
class ResealStep:
    """What one step did: secrets re-sealed, and those that did not open with the key file's key (kept as they were)."""

    resealed: int
    unreadable: list[str] = field(default_factory=list)
    next_after_id: int | None = None  # the cursor for the next step; None when nothing is left


@dataclass(frozen=True)
class KeyStatus:
    """A key id as the database uses it and the key file knows it."""

    use: KeyUse
    in_file: bool
    current: bool
    opens: bool | None  # does the file's key open an encrypted card sealed under it (None: nothing to try)


def reseal_cards_step(db: Session, vault: PinVault, *, after_id: int = 0, limit: int = DEFAULT_STEP) -> ResealStep:
    """Re-seal up to `limit` encrypted card PINs (by id, after `after_id`) under the current key."""
    batch = q.encrypted_cards_not_under(db, vault.current_key_id, after_id=after_id, limit=limit)
    resealed, unreadable = _reseal(db, vault, "card", [(card, card.name) for card in batch])
    return ResealStep(resealed, unreadable, batch[-1].id if len(batch) == limit else None)


def reseal_totp_secrets(db: Session, vault: PinVault) -> ResealStep:
    """Re-seal every staff second-factor secret under the current key (one row per staff account: one step)."""
    batch = q.totp_secrets_not_under(db, vault.current_key_id)
    resealed, unreadable = _reseal(db, vault, "totp", [(staff, totp_seal_name(staff.name)) for staff in batch])
    return ResealStep(resealed, unreadable)


def _reseal(db: Session, vault: PinVault, kind: str, batch: list[tuple[q.Sealed, str]]) -> tuple[int, list[str]]:
    opened = [(sealed, name, _opened(vault, sealed, name)) for sealed, name in batch]
    readable = [(sealed, name, clear) for sealed, name, clear in opened if clear is not None]
    secrets = vault.seal_many([name for _, name, _ in readable], [clear for _, _, clear in readable], "encrypted")
    changed = q.reseal(
        db, kind, vault.current_key_id, [(s, new) for (s, _, _), new in zip(readable, secrets, strict=True)]
    )
    return changed, [name for _, name, clear in opened if clear is None]


def _opened(vault: PinVault, sealed: q.Sealed, name: str) -> str | None:
    """The cleartext of an encrypted secret, or None when the key file's key does not open it."""
    try:
        return vault.reveal(name, sealed.key_id, sealed.secret)
    except PinKeyError:
        return None


def key_status(db: Session, vault: PinVault) -> list[KeyStatus]:
    """Every key of the file and every key id the database uses, with what each seals."""
    used = {use.key_id: use for use in q.key_use(db)}
    statuses = []
    for key_id in sorted(used.keys() | vault.keys.keys()):
        use = used.get(key_id, KeyUse(key_id, 0, 0, 0))
        sample = q.one_encrypted_card_under(db, key_id) if use.encrypted_cards and key_id in vault.keys else None
        opens = None if sample is None else _opened(vault, sample, sample.name) is not None
        statuses.append(KeyStatus(use, key_id in vault.keys, key_id == vault.current_key_id, opens))
    return statuses


def check_retirable(db: Session, vault: PinVault, key_id: int) -> None:
    """Refuse to retire a key that is not in the file, is the current one, or still seals anything."""
    if key_id not in vault.keys:
        raise ServiceError(f"PIN key {key_id} is not in the key file")
    if key_id == vault.current_key_id:
        raise ServiceError(f"PIN key {key_id} is the current key: add a new one first (`hotspotctl pins add-key`)")
    use = next((u for u in q.key_use(db) if u.key_id == key_id), None)
    if use is not None and use.total:
        raise ServiceError(
            f"PIN key {key_id} still seals {use.encrypted_cards} encrypted card(s), {use.hashed_cards} hashed card(s) "
            f"and {use.totp_secrets} second-factor secret(s): run `hotspotctl pins rotate` first "
            "(hashed PINs cannot be re-sealed: their key stays until those cards are gone)"
        )
