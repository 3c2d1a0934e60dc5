"""Card generation, PINs at rest, activation, top-up and blocking against the real PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from rlm_hotspot.core.cardcode import has_valid_check_digit
from rlm_hotspot.core.decisions import Refusal
from rlm_hotspot.db.ledger import post_entry
from rlm_hotspot.pins import PinKeyError, PinVault
from rlm_hotspot.services import cards
from rlm_hotspot.services.errors import CardRefused, NotFound, ServiceError
from tests.conftest import NOW
from tests.db import factories
from tests.db.helpers import assert_ledger_balanced


def test_generated_numbers_carry_series_and_check_digit_and_pins_are_not_stored_in_clear(
    db: Session, vault: PinVault
) -> None:
    batch = factories.world(db, vault, count=50, series=42)
    assert len(set(batch.numbers)) == 50
    assert all(n.startswith("0042") and has_valid_check_digit(n) for n in batch.numbers)
    stored = db.execute(text("SELECT number, pin_secret FROM cards WHERE batch_id = :b"), {"b": batch.batch_id})
    secrets = {row.number: bytes(row.pin_secret) for row in stored}
    for number, pin in zip(batch.numbers, batch.pins, strict=True):
        assert pin.encode() not in secrets[number]
        assert pin.encode().hex().encode() not in secrets[number]
        card = cards.find_card(db, number)
        assert vault.verify(number, pin, card.pin_key_id, card.pin_secret)
        assert not vault.verify(number, pin[::-1] + "X", card.pin_key_id, card.pin_secret)
        assert vault.reveal(number, card.pin_key_id, card.pin_secret) == pin


def test_hashed_mode_verifies_but_never_reveals(db: Session, vault: PinVault) -> None:
    batch = factories.world(db, vault, pin_mode="hashed")
    card = cards.find_card(db, batch.numbers[0])
    assert vault.verify(card.number, batch.pins[0], card.pin_key_id, card.pin_secret)
    assert vault.reveal(card.number, card.pin_key_id, card.pin_secret) is None
    with pytest.raises(ServiceError, match="hashed PINs"):
        cards.export_batch(db, vault, batch.batch_id)


def test_an_export_is_refused_before_any_pin_is_opened_for_an_unknown_or_too_large_batch(
    db: Session, vault: PinVault
) -> None:
    batch = factories.world(db, vault)  # three cards
    with pytest.raises(cards.TooManyToExport, match="export it with hotspotctl cards export") as refused:
        cards.export_batch(db, vault, batch.batch_id, max_cards=2)
    assert refused.value.card_count == 3
    with pytest.raises(NotFound):
        cards.export_batch(db, vault, batch.batch_id + 1000)
    assert len(cards.export_batch(db, vault, batch.batch_id, max_cards=3).cards) == 3


def test_a_pin_sealed_for_one_card_does_not_open_another(db: Session, vault: PinVault) -> None:
    """Not a wrong PIN (a guest's failed try) but a fault: the secret was copied, or the key file is not its own."""
    batch = factories.world(db, vault)
    first = cards.find_card(db, batch.numbers[0])
    with pytest.raises(PinKeyError, match=f"secret of {batch.numbers[1]} does not open with PIN key"):
        vault.verify(batch.numbers[1], batch.pins[0], first.pin_key_id, first.pin_secret)


def test_series_cannot_be_reused_and_a_failed_generation_leaves_nothing(db: Session, vault: PinVault) -> None:
    factories.world(db, vault, series=7)
    before = db.execute(text("SELECT count(*) FROM cards")).scalar_one()
    with pytest.raises(ServiceError, match="already used"):
        factories.batch(db, vault, series=7)
    with pytest.raises(NotFound), db.begin_nested():
        factories.batch(db, vault, tariff="no-such-tariff")
    assert db.execute(text("SELECT count(*) FROM cards")).scalar_one() == before


def test_typo_is_caught_before_lookup_and_unknown_card_is_its_own_refusal(db: Session, vault: PinVault) -> None:
    batch = factories.world(db, vault)
    number = batch.numbers[0]
    typo = number[:-2] + str((int(number[-2]) + 1) % 10) + number[-1]
    with pytest.raises(CardRefused) as refused:
        cards.find_card(db, typo)
    assert refused.value.refusal is Refusal.BAD_CARD_NUMBER
    spaced = " ".join([number[:4], number[4:8], number[8:]])
    assert cards.find_card(db, spaced).number == number
    assert cards.find_card(db, number[:4] + "-" + number[4:]).number == number


def test_activation_loads_face_value_once(db: Session, vault: PinVault) -> None:
    batch = factories.world(db, vault, validity=timedelta(days=30))
    card = cards.find_card(db, batch.numbers[0], lock=True)
    account = cards.activate(db, card, NOW)
    again = cards.activate(db, cards.find_card(db, batch.numbers[0], lock=True), NOW + timedelta(hours=1))
    assert account == again
    card = cards.find_card(db, batch.numbers[0])
    assert (card.status, card.balance, card.activated_at) == ("active", 500, NOW)
    assert cards.deadline_of(card, NOW) == NOW + timedelta(days=30)
    assert_ledger_balanced(db)


def test_top_up_moves_a_new_cards_value_and_marks_it_redeemed(db: Session, vault: PinVault) -> None:
    batch = factories.world(db, vault)
    target, source = batch.numbers[0], batch.numbers[1]
    result = cards.top_up(db, vault, target, source, batch.pins[1], NOW, pending_ttl_s=120)
    assert (result.amount, result.balance) == (500, 1000)
    assert cards.find_card(db, source).status == "redeemed"
    with pytest.raises(CardRefused) as refused:
        cards.top_up(db, vault, target, source, batch.pins[1], NOW, pending_ttl_s=120)
    assert refused.value.refusal is Refusal.REDEEMED
    assert cards.find_card(db, target).balance == 1000
    assert_ledger_balanced(db)


def test_top_up_moves_the_remaining_balance_of_a_used_card(db: Session, vault: PinVault) -> None:
    batch = factories.world(db, vault)
    used = cards.find_card(db, batch.numbers[1], lock=True)
    account = cards.activate(db, used, NOW)
    post_entry(db, account_id=account, amount=-120, cause="time", key="t1", now=NOW)
    result = cards.top_up(db, vault, batch.numbers[0], batch.numbers[1], batch.pins[1], NOW, pending_ttl_s=120)
    assert (result.amount, result.balance) == (380, 880)
    assert cards.find_card(db, batch.numbers[1]).balance == 880  # it now points at the target's account
    assert_ledger_balanced(db)


def test_top_up_refusals(db: Session, vault: PinVault) -> None:
    batch = factories.world(db, vault)
    with pytest.raises(CardRefused) as wrong:
        cards.top_up(db, vault, batch.numbers[0], batch.numbers[1], "WRONGPIN00", NOW, pending_ttl_s=120)
    assert wrong.value.refusal is Refusal.WRONG_PIN
    with pytest.raises(ServiceError, match="itself"):
        cards.top_up(db, vault, batch.numbers[0], batch.numbers[0], batch.pins[0], NOW, pending_ttl_s=120)
    cards.set_blocked(db, blocked=True, number=batch.numbers[2])
    with pytest.raises(CardRefused) as blocked:
        cards.top_up(db, vault, batch.numbers[0], batch.numbers[2], batch.pins[2], NOW, pending_ttl_s=120)
    assert blocked.value.refusal is Refusal.BLOCKED


def test_block_and_unblock_a_whole_batch(db: Session, vault: PinVault) -> None:
    batch = factories.world(db, vault, count=20)
    assert cards.set_blocked(db, blocked=True, batch_id=batch.batch_id) == 20
    assert cards.set_blocked(db, blocked=True, batch_id=batch.batch_id) == 0
    card = cards.find_card(db, batch.numbers[3])
    assert cards.usable_refusal(card, NOW) is Refusal.BLOCKED
    assert cards.set_blocked(db, blocked=False, batch_id=batch.batch_id) == 20
    with pytest.raises(NotFound):
        cards.set_blocked(db, blocked=True, batch_id=999_999)


def test_validity_refusals(db: Session, vault: PinVault) -> None:
    factories.world(db, vault)
    early = factories.batch(db, vault, valid_from=NOW + timedelta(days=1))
    late = factories.batch(db, vault, use_before=NOW - timedelta(seconds=1))
    assert cards.usable_refusal(cards.find_card(db, early.numbers[0]), NOW) is Refusal.NOT_YET_VALID
    assert cards.usable_refusal(cards.find_card(db, late.numbers[0]), NOW) is Refusal.EXPIRED


def test_concurrent_redemptions_of_one_card_move_its_value_once(committed: Engine, vault: PinVault) -> None:
    with Session(committed) as session, session.begin():
        batch = factories.world(session, vault, count=3)
    targets, source, source_pin = batch.numbers[:2], batch.numbers[2], batch.pins[2]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def redeem(target: str) -> None:
        with Session(committed) as session:
            barrier.wait()
            try:
                with session.begin():
                    cards.top_up(session, vault, target, source, source_pin, NOW, pending_ttl_s=120)
                outcomes.append("ok")
            except CardRefused as exc:
                outcomes.append(exc.refusal.value)

    threads = [threading.Thread(target=redeem, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["ok", "redeemed"]
    with Session(committed) as session:
        total = session.execute(text("SELECT sum(balance) FROM accounts")).scalar_one()
        assert total == 1000  # the winning target (5.00) plus the source card's 5.00, moved once
        assert_ledger_balanced(session)
