"""Card use cases: generate a batch, activate on first use, top up, block and unblock."""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.orm import Session

from rlm_hotspot.core.cardcode import (
    DIGITS,
    SAFE_ALPHABET,
    CardNumberError,
    generate_pins,
    make_card_number,
    normalise_card_number,
    pin_entropy_bits,
    random_serials,
)
from rlm_hotspot.core.decisions import Refusal
from rlm_hotspot.core.validity import CardValidity, effective_deadline, validity_refusal
from rlm_hotspot.db import cards as q
from rlm_hotspot.db.catalog import hotspot_by_id
from rlm_hotspot.db.ledger import create_account, post_entry
from rlm_hotspot.db.sessions import lock_card_and_count_live
from rlm_hotspot.pins import PinVault
from rlm_hotspot.services.catalog import get_hotspot, get_tariff
from rlm_hotspot.services.errors import CardRefused, NotFound, ServiceError

PIN_ALPHABETS = {"safe": SAFE_ALPHABET, "digits": DIGITS}
MAX_BATCH = 10_000_000
MIN_PIN_BITS = 40


@dataclass(frozen=True)
class BatchSpec:
    """What an admin asks for when generating cards; money already in minor units."""

    count: int
    face_value: int
    name: str | None = None
    series: int | None = None
    tariff: str | None = None
    hotspot: str | None = None
    valid_from: datetime | None = None
    use_before: datetime | None = None
    validity: timedelta | None = None
    expires_at: datetime | None = None
    pin_length: int = 10
    pin_alphabet: str = "safe"
    serial_width: int | None = None


@dataclass(frozen=True)
class GeneratedBatch:
    batch_id: int
    series: int
    numbers: list[str]
    pins: list[str]
    pin_entropy_bits: float


def pin_strength(alphabet_name: str, length: int) -> float:
    return pin_entropy_bits(PIN_ALPHABETS[alphabet_name], length)


def generate_batch(
    db: Session,
    vault: PinVault,
    spec: BatchSpec,
    now: datetime,
    pin_mode: str,
    progress: Callable[[int], None] | None = None,
) -> GeneratedBatch:
    """Create a batch of cards in the caller's transaction: all of them or (on any error) none."""
    _check_batch_spec(spec)
    tariff_id = get_tariff(db, spec.tariff).id if spec.tariff else None
    hotspot_id = get_hotspot(db, spec.hotspot).id if spec.hotspot else None
    series = spec.series if spec.series is not None else q.next_free_series(db)
    if series is None:
        raise ServiceError("every card series 0001-9999 is taken")
    if q.series_in_use(db, series):
        raise ServiceError(f"series {series:04d} is already used by another batch")
    width = spec.serial_width or max(6, len(str(spec.count)) + 2)
    if spec.count > 10**width // 100:
        raise ServiceError(
            f"{spec.count} cards need a serial width of at least {len(str(spec.count)) + 2} digits "
            "(numbers stay sparse so a guessed number is almost never a card)"
        )
    alphabet = PIN_ALPHABETS[spec.pin_alphabet]
    batch_id = q.insert_batch(
        db,
        series=series,
        name=spec.name,
        card_count=spec.count,
        face_value=spec.face_value,
        tariff_id=tariff_id,
        hotspot_id=hotspot_id,
        valid_from=spec.valid_from,
        use_before=spec.use_before,
        validity_seconds=int(spec.validity.total_seconds()) if spec.validity else None,
        expires_at=spec.expires_at,
        pin_mode=pin_mode,
        pin_alphabet=spec.pin_alphabet,
        pin_length=spec.pin_length,
        created_at=now,
    )
    serials = random_serials(spec.count, width, secrets.token_bytes)
    numbers = [make_card_number(series, serial, width) for serial in serials]
    pins = generate_pins(spec.count, spec.pin_length, alphabet, secrets.token_bytes)
    q.copy_cards(db, batch_id, vault.current_key_id, numbers, vault.seal_many(numbers, pins, pin_mode), progress)
    return GeneratedBatch(batch_id, series, numbers, pins, pin_entropy_bits(alphabet, spec.pin_length))


def _check_batch_spec(spec: BatchSpec) -> None:
    if not 1 <= spec.count <= MAX_BATCH:
        raise ServiceError(f"card count must be between 1 and {MAX_BATCH}")
    if spec.face_value <= 0:
        raise ServiceError("the face value must be positive")
    if spec.series is not None and not 0 <= spec.series <= 9999:
        raise ServiceError("the series is a number from 0 to 9999")
    if spec.pin_alphabet not in PIN_ALPHABETS:
        raise ServiceError(f"PIN alphabet must be one of {', '.join(PIN_ALPHABETS)}")
    if not 4 <= spec.pin_length <= 32:
        raise ServiceError("the PIN length must be between 4 and 32")
    if spec.serial_width is not None and not 4 <= spec.serial_width <= 14:
        raise ServiceError("the serial width must be between 4 and 14 digits")
    if spec.validity is not None and spec.validity.total_seconds() <= 0:
        raise ServiceError("the validity period must be positive")
    for label, earlier, later in (
        ("valid-from", spec.valid_from, spec.use_before),
        ("valid-from", spec.valid_from, spec.expires_at),
    ):
        if earlier and later and earlier >= later:
            raise ServiceError(f"{label} must come before the use-before and expiry dates")


class CardDates(Protocol):
    """What the validity rules read of a card: a CardRecord, a login snapshot or a session view."""

    @property
    def activated_at(self) -> datetime | None: ...
    @property
    def valid_from(self) -> datetime | None: ...
    @property
    def use_before(self) -> datetime | None: ...
    @property
    def validity_seconds(self) -> int | None: ...
    @property
    def expires_at(self) -> datetime | None: ...


class CardState(CardDates, Protocol):
    """What the usability rules read of a card: a CardRecord, or a login snapshot of one."""

    @property
    def status(self) -> str | None: ...
    @property
    def blocked(self) -> bool | None: ...
    @property
    def balance(self) -> int | None: ...


def validity_of(card: CardDates) -> CardValidity:
    return CardValidity(
        valid_from=card.valid_from,
        use_before=card.use_before,
        validity_seconds=card.validity_seconds,
        expires_at=card.expires_at,
    )


def deadline_of(card: CardDates, now: datetime) -> datetime | None:
    return effective_deadline(validity_of(card), card.activated_at, now)


def find_card(db: Session, text: str, *, lock: bool = False) -> q.CardRecord:
    """Look a card up by what a person typed; a typo is caught by the check digit before any query."""
    try:
        number = normalise_card_number(text)
    except CardNumberError as exc:
        raise CardRefused(Refusal.BAD_CARD_NUMBER, str(exc)) from None
    card = q.card_by_number(db, number, lock=lock)
    if card is None:
        raise CardRefused(Refusal.UNKNOWN_CARD)
    return card


def usable_refusal(card: CardState, now: datetime) -> Refusal | None:
    """Why a card cannot be used right now (ignoring PIN and sessions), or None."""
    if card.status == "redeemed":
        return Refusal.REDEEMED
    if card.blocked:
        return Refusal.BLOCKED
    refusal = validity_refusal(validity_of(card), card.activated_at, now)
    if refusal is not None:
        return refusal
    if card.status == "active" and (card.balance or 0) <= 0:
        return Refusal.EXHAUSTED
    return None


def activate(db: Session, card: q.CardRecord, now: datetime) -> int:
    """First use: open the card's account and load its face value through the ledger.

    The caller holds the card row lock (`find_card(lock=True)`), so two first logins cannot both
    activate; the idempotency key makes a retry harmless anyway. Returns the account id.
    """
    if card.status == "active" and card.account_id is not None:
        return card.account_id
    if card.status != "new":
        raise CardRefused(Refusal.REDEEMED)
    account_id = create_account(db, now)
    post_entry(
        db,
        account_id=account_id,
        amount=card.face_value,
        cause="card_load",
        key=f"card_load:{card.id}",
        now=now,
        card_id=card.id,
        note=f"card {card.number} activated",
    )
    q.set_active(db, card.id, account_id, now)
    return account_id


@dataclass(frozen=True)
class TopUp:
    target_number: str
    source_number: str
    amount: int
    balance: int


def top_up(
    db: Session, vault: PinVault, target: str, source: str, source_pin: str, now: datetime, *, pending_ttl_s: int
) -> TopUp:
    """Move the value of card `source` onto the account of card `target`; `source` becomes redeemed.

    Both card rows are locked in id order, the source's state is checked under the lock and the ledger
    keys are unique per source card, so two concurrent redemptions of one card move its value once. A
    source card with a live session (a login taken under the same lock, `pending_ttl_s` as for logins) is
    refused: its value would move while a device still surfs on it — the NAS was granted that value at
    login, so the session's usage would go unbilled (its Start finds the card redeemed) or overdraw it.
    """
    target_number, source_number = _normalised(target), _normalised(source)
    if target_number == source_number:
        raise ServiceError("a card cannot top itself up")
    locked = q.lock_cards(db, [target_number, source_number])
    target_card, source_card = locked.get(target_number), locked.get(source_number)
    if target_card is None or source_card is None:
        raise CardRefused(Refusal.UNKNOWN_CARD)
    if not vault.verify(source_card.number, source_pin, source_card.pin_key_id, source_card.pin_secret):
        raise CardRefused(Refusal.WRONG_PIN, "Wrong PIN for the top-up card.")
    refusal = usable_refusal(source_card, now)
    if refusal is not None:
        raise CardRefused(refusal, f"Top-up card: {refusal.message}")
    target_refusal = usable_refusal(target_card, now)
    if target_refusal not in (None, Refusal.EXHAUSTED):
        raise CardRefused(target_refusal)
    if source_card.hotspot_id is not None and target_card.hotspot_id != source_card.hotspot_id:
        raise CardRefused(Refusal.WRONG_HOTSPOT, "The top-up card belongs to another hotspot.")
    if lock_card_and_count_live(db, source_card.id, now, pending_ttl_s):
        raise CardRefused(Refusal.TOO_MANY_SESSIONS, "The top-up card is in use on a device: end that session first.")
    account_id = activate(db, target_card, now)
    if source_card.status == "new":
        amount = source_card.face_value
    else:
        amount = source_card.balance or 0
        assert source_card.account_id is not None, "a card in use has its account"
        post_entry(
            db,
            account_id=source_card.account_id,
            amount=-amount,
            cause="topup",
            key=f"topup_out:{source_card.id}",
            now=now,
            card_id=source_card.id,
            note=f"value moved to card {target_card.number}",
        )
    balance = post_entry(
        db,
        account_id=account_id,
        amount=amount,
        cause="topup",
        key=f"topup_in:{source_card.id}",
        now=now,
        card_id=source_card.id,
        note=f"top-up from card {source_card.number}",
    )
    if balance is None:
        raise CardRefused(Refusal.REDEEMED)
    q.set_redeemed(db, source_card.id, account_id, now)
    return TopUp(target_card.number, source_card.number, amount, balance)


def _normalised(text: str) -> str:
    try:
        return normalise_card_number(text)
    except CardNumberError as exc:
        raise CardRefused(Refusal.BAD_CARD_NUMBER, str(exc)) from None


def set_blocked(db: Session, *, blocked: bool, number: str | None = None, batch_id: int | None = None) -> int:
    """Block or unblock one card or a whole batch (one statement, any size); returns cards changed."""
    if (number is None) == (batch_id is None):
        raise ServiceError("name exactly one card number or one batch")
    if number is not None:
        card = find_card(db, number)
        return q.set_blocked(db, blocked=blocked, number=card.number)
    assert batch_id is not None, "exactly one was named"
    if not q.batch_exists(db, batch_id):
        raise NotFound(f"no batch {batch_id}")
    return q.set_blocked(db, blocked=blocked, batch_id=batch_id)


def reveal_pins(vault: PinVault, cards: list[q.CardRecord]) -> list[str | None]:
    """Cleartext PINs for printing an encrypted batch (None for hashed cards)."""
    return [vault.reveal(c.number, c.pin_key_id, c.pin_secret) for c in cards]


@dataclass(frozen=True)
class BatchExport:
    """A batch ready to print: numbers with cleartext PINs and what the card face shows."""

    batch_id: int
    series: int
    name: str | None
    face_value: int
    hotspot: str | None
    timezone: str
    portal_url: str | None
    use_before: datetime | None
    validity: timedelta | None
    expires_at: datetime | None
    cards: list[tuple[str, str | None]]


class HashedPins(ServiceError):
    """A batch whose PINs were hashed: they could be saved only when it was generated."""

    def __init__(self, batch_id: int) -> None:
        super().__init__(f"batch {batch_id} has hashed PINs: they could only be saved when it was generated")


class TooManyToExport(ServiceError):
    """More cards than one request may decrypt and print: a job for `hotspotctl cards export`."""

    def __init__(self, batch: q.Batch) -> None:
        super().__init__(f"batch {batch.id} has {batch.card_count} cards: export it with hotspotctl cards export")
        self.card_count = batch.card_count


def exportable_batch(db: Session, batch_id: int, *, max_cards: int | None = None) -> q.Batch:
    """The batch, if its PINs can be exported (at most `max_cards` of them); else why not."""
    batch = q.batch_by_id(db, batch_id)
    if batch is None:
        raise NotFound(f"no batch {batch_id}")
    if batch.pin_mode != "encrypted":
        raise HashedPins(batch_id)
    if max_cards is not None and batch.card_count > max_cards:
        raise TooManyToExport(batch)
    return batch


def export_batch(db: Session, vault: PinVault, batch_id: int, *, max_cards: int | None = None) -> BatchExport:
    """Decrypt a batch's PINs for printing; refused for hashed batches (their PINs are gone) and, with
    `max_cards`, for a batch larger than that."""
    batch = exportable_batch(db, batch_id, max_cards=max_cards)
    batch_cards = q.cards_of_batch(db, batch_id)
    pins = reveal_pins(vault, batch_cards)
    if any(pin is None for pin in pins):  # a card sealed unlike its batch: print none rather than a blank PIN
        raise HashedPins(batch_id)
    hotspot = hotspot_by_id(db, batch.hotspot_id) if batch.hotspot_id is not None else None
    return BatchExport(
        batch_id=batch_id,
        series=batch.series,
        name=batch.name,
        face_value=batch.face_value,
        hotspot=hotspot.name if hotspot else None,
        timezone=hotspot.timezone if hotspot else "UTC",
        portal_url=hotspot.portal_url if hotspot else None,
        use_before=batch.use_before,
        validity=timedelta(seconds=batch.validity_seconds) if batch.validity_seconds else None,
        expires_at=batch.expires_at,
        cards=[(c.number, pin) for c, pin in zip(batch_cards, pins, strict=True)],
    )


def list_cards(db: Session, *, batch_id: int | None, state: str | None, limit: int) -> list[dict[str, object]]:
    """Cards with their state; a redeemed card has no balance of its own (its account is now the card's
    it was added to, whose balance it would otherwise show)."""
    rows = q.admin_cards(db, batch_id=batch_id, state=state, limit=limit)
    for row in rows:
        if row["state"] == "redeemed":
            row["balance"] = None
    return rows


def redeemed_into(db: Session, card: q.CardRecord) -> str | None:
    """For a redeemed card, the number of the card its value was added to."""
    if card.status != "redeemed" or card.account_id is None:
        return None
    return q.card_now_holding(db, card.account_id, card.id)


def needs_stronger_pin(bits: float) -> bool:
    return math.floor(bits) < MIN_PIN_BITS
