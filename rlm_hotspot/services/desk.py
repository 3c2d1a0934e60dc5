"""The front desk's use cases: sell cards, help a guest with a card, see who is online and today's sales.

Selling reveals PINs exactly once: the cards are taken from stock and marked sold in the same
transaction that decrypts their PINs for the printout, so no later request can list them again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from rlm_hotspot.core.cardcode import CardNumberError, normalise_card_number
from rlm_hotspot.core.decisions import Refusal
from rlm_hotspot.db import cards as cards_q
from rlm_hotspot.db import sales as q
from rlm_hotspot.db.cards import Batch
from rlm_hotspot.db.catalog import hotspot_by_id, hotspot_by_name
from rlm_hotspot.db.enforcement import queue_coas
from rlm_hotspot.db.ledger import post_entry
from rlm_hotspot.db.lockouts import card_failures, locked_out
from rlm_hotspot.db.reports import StatementLine
from rlm_hotspot.pins import PinVault
from rlm_hotspot.services.access import Policy, record_attempt
from rlm_hotspot.services.cards import TopUp, activate, deadline_of, find_card, reveal_pins, top_up, usable_refusal
from rlm_hotspot.services.errors import CardRefused, NotFound, ServiceError
from rlm_hotspot.services.reports import statement

MAX_CARDS_PER_SALE = 100


@dataclass(frozen=True)
class SoldCard:
    number: str
    pin: str


@dataclass(frozen=True)
class Sale:
    """Cards just sold, with their PINs (for this one printout) and what their face shows."""

    batch_id: int
    series: int
    batch_name: str | None
    face_value: int
    price_each: int | None  # None: a reprint
    hotspot: str | None
    timezone: str
    portal_url: str | None
    use_before: datetime | None
    validity_seconds: int | None
    expires_at: datetime | None
    cards: list[SoldCard]


def stock(db: Session, now: datetime) -> list[dict[str, object]]:
    return q.stock(db, now)


@dataclass(frozen=True)
class SaleLine:
    """One line of a sale: `count` cards of a batch, or of a hotspot's preset face value (the console
    picks the batches)."""

    count: int
    batch_id: int | None = None
    preset: tuple[int, int] | None = None  # (hotspot id, face value)


def sell_lines(
    db: Session,
    vault: PinVault,
    *,
    staff_id: int,
    lines: list[SaleLine],
    price_each: int | None,
    now: datetime,
) -> list[Sale]:
    """One sale of several lines (face values, batches): all its cards or none. Returns one `Sale` per
    batch the cards came from, in the order of the lines. `price_each` (None: each card's face value) is
    for a sale of one line only: one price for cards of different values would be a mistake at the till."""
    wanted = [line for line in lines if line.count]
    if not wanted or any(line.count < 0 for line in wanted):
        raise ServiceError("choose how many cards of which face value to sell")
    if sum(line.count for line in wanted) > MAX_CARDS_PER_SALE:
        raise ServiceError(f"sell 1 to {MAX_CARDS_PER_SALE} cards at a time")
    if price_each is not None and len(wanted) > 1:
        raise ServiceError("type a price only when selling cards of one face value; leave it empty for face values")
    sales: list[Sale] = []
    for line in wanted:
        if line.preset is not None:
            hotspot_id, face_value = line.preset
            sales += sell_preset(
                db, vault, staff_id=staff_id, hotspot_id=hotspot_id, face_value=face_value, count=line.count,
                price_each=price_each, now=now,
            )  # fmt: skip
        else:
            sales.append(
                sell(db, vault, staff_id=staff_id, batch_id=line.batch_id or 0, count=line.count,
                     price_each=price_each, now=now)
            )  # fmt: skip
    return sales


def sell(
    db: Session,
    vault: PinVault,
    *,
    staff_id: int,
    batch_id: int,
    count: int,
    price_each: int | None,
    now: datetime,
) -> Sale:
    """Take `count` cards of a batch from stock, mark them sold and decrypt their PINs for printing.

    `price_each` None: the face value. Refused for batches with hashed PINs (nothing to print: those
    were printed when generated, and are sold with `mark_sold`).
    """
    if not 1 <= count <= MAX_CARDS_PER_SALE:
        raise ServiceError(f"sell 1 to {MAX_CARDS_PER_SALE} cards at a time")
    batch = _printable_batch(db, batch_id)
    claimed = q.claim_for_sale(db, batch_id, count, now)
    if len(claimed) < count:
        raise ServiceError(f"only {len(claimed)} card(s) of this batch left to sell")
    return _deliver(db, vault, batch, claimed, staff_id=staff_id, price_each=price_each, now=now)


def presets(db: Session, now: datetime) -> list[dict[str, object]]:
    """The face values each hotspot's desk offers, with how many cards sell under each now."""
    return q.presets_in_stock(db, now)


def sell_preset(
    db: Session,
    vault: PinVault,
    *,
    staff_id: int,
    hotspot_id: int,
    face_value: int,
    count: int,
    price_each: int | None,
    now: datetime,
) -> list[Sale]:
    """Sell cards of a hotspot's preset face value: the desk names the value, this takes the cards from the
    batches of that value valid at the hotspot, the soonest to lapse first, as many batches as it needs."""
    if not 1 <= count <= MAX_CARDS_PER_SALE:
        raise ServiceError(f"sell 1 to {MAX_CARDS_PER_SALE} cards at a time")
    taken: list[tuple[int, dict[int, str]]] = []  # (batch id, the cards claimed from it)
    got = 0
    for batch_id in q.batches_for_preset(db, hotspot_id, face_value, now):
        claimed = q.claim_for_sale(db, batch_id, count - got, now)
        if claimed:
            taken.append((batch_id, claimed))
            got += len(claimed)
        if got == count:
            break
    else:
        raise ServiceError(f"only {got} card(s) of this face value left to sell at this hotspot")
    return [
        _deliver(db, vault, _printable_batch(db, batch_id), claimed, staff_id=staff_id,
                 price_each=price_each, now=now)
        for batch_id, claimed in taken
    ]  # fmt: skip


def _printable_batch(db: Session, batch_id: int) -> Batch:
    batch = cards_q.batch_by_id(db, batch_id)
    if batch is None:
        raise NotFound(f"no batch {batch_id}")
    if batch.pin_mode != "encrypted":
        raise ServiceError("this batch's PINs were printed when it was made: sell its cards by number")
    return batch


def _deliver(
    db: Session,
    vault: PinVault,
    batch: Batch,
    claimed: dict[int, str],
    *,
    staff_id: int,
    price_each: int | None,
    now: datetime,
) -> Sale:
    """The cards claimed from a batch are sold: the sale recorded, their PINs decrypted for the printout."""
    price = batch.face_value if price_each is None else price_each
    if price < 0:
        raise ServiceError("the price cannot be negative")
    q.insert_sales(db, list(claimed), staff_id=staff_id, price=price, now=now)
    locked = cards_q.lock_cards(db, list(claimed.values()))
    records = [locked[number] for number in claimed.values()]
    return _printout(db, batch, records, reveal_pins(vault, records), price)


def set_preset(db: Session, hotspot: str, face_value: int, *, offered: bool) -> bool:
    """An admin adds (`offered`) or removes a face value from a hotspot's presets; False: nothing changed."""
    if face_value <= 0:
        raise ServiceError("a face value is above zero")
    row = hotspot_by_name(db, hotspot)
    if row is None:
        raise NotFound(f"no hotspot {hotspot!r}")
    if offered:
        return q.add_preset(db, row.id, face_value)
    return q.remove_preset(db, row.id, face_value)


def _printout(
    db: Session,
    batch: cards_q.Batch,
    records: list[cards_q.CardRecord],
    pins: list[str | None],
    price_each: int | None,
) -> Sale:
    hotspot = hotspot_by_id(db, batch.hotspot_id) if batch.hotspot_id is not None else None
    return Sale(
        batch_id=batch.id,
        series=batch.series,
        batch_name=batch.name,
        face_value=batch.face_value,
        price_each=price_each,
        hotspot=hotspot.name if hotspot else None,
        timezone=hotspot.timezone if hotspot else "UTC",
        portal_url=hotspot.portal_url if hotspot else None,
        use_before=batch.use_before,
        validity_seconds=batch.validity_seconds,
        expires_at=batch.expires_at,
        cards=[SoldCard(c.number, pin or "") for c, pin in zip(records, pins, strict=True)],
    )


def mark_sold(db: Session, card_text: str, *, staff_id: int, price: int | None, now: datetime) -> cards_q.CardRecord:
    """Record the sale of a card printed beforehand (typed or scanned at the desk)."""
    card = find_card(db, card_text, lock=True)
    if card.status != "new" or card.blocked:
        raise ServiceError("this card was used or is blocked: it cannot be sold")
    if q.sale_of(db, card.id) is not None:
        raise ServiceError("this card was sold already")
    amount = card.face_value if price is None else price
    if amount < 0:
        raise ServiceError("the price cannot be negative")
    q.insert_sales(db, [card.id], staff_id=staff_id, price=amount, now=now)
    return card


@dataclass(frozen=True)
class CardOverview:
    """What the desk sees of a card when a guest asks for help (never its PIN)."""

    card: cards_q.CardRecord
    refusal: Refusal | None  # why it cannot be used now, None if it can
    deadline: datetime | None
    timezone: str
    sale: dict[str, object] | None
    sessions: list[dict[str, object]]
    statement: list[StatementLine]
    locked_out: bool


def card_overview(db: Session, policy: Policy, card_text: str, now: datetime) -> CardOverview:
    """Look a card up by number (a typo is caught by the check digit) with everything a guest may ask."""
    card = find_card(db, card_text)
    sessions = q.sessions_of_card(db, card.id)
    if card.hotspot_id is not None:
        timezone = hotspot_by_id(db, card.hotspot_id).timezone  # type: ignore[union-attr]  # the batch refers to it
    else:
        timezone = str(sessions[0]["timezone"]) if sessions else "UTC"
    locked = any(
        row["kind"] == "card" and row["subject"] == card.number
        for row in locked_out(db, now, policy.lockout_window_s, policy.lockout_attempts)
    )
    return CardOverview(
        card=card,
        refusal=usable_refusal(card, now),
        deadline=deadline_of(card, now),
        timezone=timezone,
        sale=q.sale_of(db, card.id),
        sessions=sessions,
        statement=statement(db, card.number).rows,
        locked_out=locked,
    )


def end_session(db: Session, session_id: int, now: datetime) -> None:
    """Queue the session's end for the worker (Disconnect-Request, or closing a standalone gate)."""
    if not q.queue_end(db, session_id, now):
        raise ServiceError(f"session {session_id} has ended already")


def adjust(
    db: Session, card_text: str, amount: int, reason: str, *, staff_id: int, audit_id: int, now: datetime
) -> int:
    """A manager's correction of an activated card's balance, through the ledger, with who and why.

    Keyed by the audit row that records it, so a retried request posts once. Returns the new balance.
    """
    reason = reason.strip()
    if not reason:
        raise ServiceError("say why the balance is adjusted")
    if amount == 0:
        raise ServiceError("the adjustment is zero")
    card = find_card(db, card_text, lock=True)
    if card.account_id is None:
        raise ServiceError("this card was never used: it has no balance to adjust yet")
    key = f"adjustment:console:{audit_id}"
    balance = post_entry(
        db,
        account_id=card.account_id,
        amount=amount,
        cause="adjustment",
        key=key,
        now=now,
        card_id=card.id,
        note=reason[:200],
    )
    q.record_operator(db, key, staff_id, reason)
    return int(balance if balance is not None else card.balance or 0)


def refund(
    db: Session, card_text: str, amount: int, reason: str, *, staff_id: int, audit_id: int, now: datetime
) -> int:
    """Money paid back to a guest over the counter: the card's balance goes down by `amount` (ledger cause
    `refund`), with the manager and the reason behind the row, so the till can account for the cash.

    A card never used is activated first (its value reaches an account only through the ledger). Keyed by
    the audit row that records it, so a retried request pays out once. Returns the new balance.
    """
    reason = reason.strip()
    if not reason:
        raise ServiceError("say why the money is refunded")
    if amount <= 0:
        raise ServiceError("a refund is an amount above zero")
    card = find_card(db, card_text, lock=True)
    if card.status == "redeemed":
        raise ServiceError("this card's value was moved to another card: refund that card")
    available = card.face_value if card.status == "new" else card.balance or 0
    if amount > available:
        raise ServiceError("a refund cannot exceed the card's balance")
    account_id = activate(db, card, now)
    key = f"refund:console:{audit_id}"
    balance = post_entry(
        db,
        account_id=account_id,
        amount=-amount,
        cause="refund",
        key=key,
        now=now,
        card_id=card.id,
        note=reason[:200],
    )
    q.record_operator(db, key, staff_id, reason)
    return int(balance if balance is not None else available - amount)


def refunds_between(db: Session, since: datetime, until: datetime) -> list[q.RefundsLine]:
    """Money paid back at the desk in a period, per manager (the till's other side)."""
    return q.refunds_between(db, since, until)


def top_up_at_desk(
    db: Session,
    vault: PinVault,
    policy: Policy,
    target: str,
    source: str,
    source_pin: str,
    *,
    staff_id: int,
    now: datetime,
) -> TopUp:
    """Move a second card's value onto a guest's card at the desk (the guest hands both over).

    The card service does the moving (both rows locked, the source's PIN checked, ledger keys unique per
    source card); the staff member is recorded behind both ledger rows, and the NAS of a live RADIUS
    session of the target is told the new limits (CoA), as after a top-up on the portal.

    The form takes a card number and a PIN, so like the portal's it is a way to guess PINs: each attempt is
    recorded against the second card's number (source 'desk'), wrong PINs count towards its lockout, and a
    locked-out card is refused before its PIN is checked. The caller commits, also after a refusal.
    """
    try:
        source_number = normalise_card_number(source)
    except CardNumberError as exc:
        raise CardRefused(Refusal.BAD_CARD_NUMBER, f"Top-up card: {exc}") from None
    try:
        if card_failures(db, source_number, now, policy.lockout_window_s) >= policy.lockout_attempts:
            raise CardRefused(Refusal.LOCKED_OUT, "The top-up card is locked out after too many wrong PINs.")
        with db.begin_nested():  # a refusal leaves nothing half-done in the caller's transaction
            result = top_up(
                db, vault, target, source, source_pin, now, pending_ttl_s=policy.pending_session_ttl_s
            )
    except CardRefused as refused:
        _record_desk_attempt(db, source_number, refused.refusal, now)
        raise
    _record_desk_attempt(db, source_number, None, now)
    source_card = find_card(db, result.source_number)
    for key in (f"topup_in:{source_card.id}", f"topup_out:{source_card.id}"):
        q.record_operator(db, key, staff_id, f"top-up at the desk from card {source_card.number}")
    target_card = find_card(db, result.target_number)
    live = [int(str(s["id"])) for s in q.sessions_of_card(db, target_card.id) if s["status"] != "closed"]
    queue_coas(db, live, now)
    return result


def _record_desk_attempt(db: Session, number: str, outcome: Refusal | None, now: datetime) -> None:
    card = cards_q.card_by_number(db, number)
    hotspot_id = card.hotspot_id if card is not None else None
    record_attempt(db, card_text=number, client=None, hotspot_id=hotspot_id, source="desk", outcome=outcome, now=now)


def reprint(db: Session, vault: PinVault, card_text: str) -> Sale:
    """A card's slip once more, PIN included, for a slip lost before the card was used up (the caller
    audits it); `price_each` None marks it a reprint."""
    card = find_card(db, card_text)
    if card.status == "redeemed" or card.blocked:
        raise ServiceError("this card is blocked or its value was moved: there is nothing to reprint")
    pins = reveal_pins(vault, [card])
    if pins[0] is None:
        raise ServiceError("this card's PIN is hashed: it cannot be shown again")
    return _printout(db, cards_q.batch_of(db, card), [card], pins, None)


def online(db: Session) -> dict[str, list[dict[str, object]]]:
    """Sessions not closed, grouped by hotspot."""
    grouped: dict[str, list[dict[str, object]]] = {}
    for row in q.online(db):
        grouped.setdefault(str(row["hotspot"]), []).append(row)
    return grouped


def local_day(now: datetime, timezone: str) -> tuple[datetime, datetime]:
    """The local calendar day around `now` in `timezone`, as UTC bounds."""
    zone = ZoneInfo(timezone)
    start = now.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    return start, (start + timedelta(days=1)).replace(tzinfo=zone)


def sales_between(db: Session, since: datetime, until: datetime) -> list[q.SalesLine]:
    return q.sales_between(db, since, until)


def takings_per_day(db: Session, since: datetime, until: datetime, timezone: str) -> list[tuple[str, int]]:
    return q.takings_per_day(db, since, until, timezone)


def per_hour(db: Session, day: date, timezone: str) -> list[q.HourLine]:
    """Usage and money per local hour of `day` in `timezone` (the desk's day)."""
    start = datetime.combine(day, time(), ZoneInfo(timezone))
    return q.per_hour(db, start, datetime.combine(day + timedelta(days=1), time(), ZoneInfo(timezone)), timezone)


def batches(db: Session, batch_id: int | None = None) -> list[dict[str, object]]:
    return q.batches(db, batch_id)
