"""The hook's Start of a login on a card already in use: one read and one guarded write, the same result as
the locked path; whatever that write cannot be sure of goes to the locked path, which says what it says."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event, text
from sqlalchemy.orm import Session

from rlm_hotspot.core.decisions import Refusal
from rlm_hotspot.db import sessions as q
from rlm_hotspot.pins import PinVault
from rlm_hotspot.radius.accounting import bill_packet
from rlm_hotspot.radius.decode import decode_accounting, event_time
from rlm_hotspot.services import cards
from rlm_hotspot.services.errors import CardRefused
from rlm_hotspot.services.sessions import plan_start, record_accounting, record_accounting_without_lock
from rlm_hotspot.services.tariff_cache import NasCache, TariffCache
from tests.conftest import NOW
from tests.db.helpers import assert_ledger_balanced
from tests.db.test_accounting_batch import attributes, outcome_of, savepoint
from tests.db.test_sessions import NAS_IP, radius_login, radius_world

SAID = {"class": True, "seconds": 0, "octets": 0, "delay": 0}


def in_use(db: Session, vault: PinVault, count: int) -> list[str]:
    """`count` cards, each used once (a login, its Start and Stop), then logged in again: a Start waits for each."""
    numbers = radius_world(db, vault, count=count).numbers
    for i, number in enumerate(numbers):
        radius_login(db, vault, number, token=f"a1-{i}")
        for status, at in (("start", 0), ("stop", 60)):
            said = {**SAID, "status": status, "card": i, "sid": f"1-{i}", "seconds": at}
            bill(db, attributes(said, numbers, "a"), at)
        radius_login(db, vault, number, token=f"a2-{i}", now=NOW + timedelta(seconds=120))
    return numbers


def bill(db: Session, packet, at: int, nas: NasCache | None = None):  # type: ignore[no-untyped-def]
    return bill_packet(
        packet,
        NOW + timedelta(seconds=at),
        quick=db,
        careful=lambda: savepoint(db),
        tariffs=TariffCache(),
        nas=nas or NasCache(),
    )


def second_start(i: int, numbers: list[str]):  # type: ignore[no-untyped-def]
    return attributes({**SAID, "status": "start", "card": i, "sid": f"2-{i}"}, numbers, "a")


def test_a_start_on_a_card_in_use_is_one_read_and_one_write_with_the_locked_paths_result(
    db: Session, vault: PinVault
) -> None:
    numbers = in_use(db, vault, 2)
    nas = NasCache(ttl=timedelta(hours=1))
    nas.get(db, NAS_IP, NOW)  # read once per cache
    statements: list[str] = []
    event.listen(db.connection(), "before_cursor_execute", lambda *args: statements.append(args[2]))
    quick = bill(db, second_start(0, numbers), 130, nas)
    assert len(statements) == 2, [" ".join(s.split())[:60] for s in statements]  # the session, its opening
    packet = second_start(1, numbers)  # the other card's, through the locked path
    with savepoint(db) as careful:
        locked = record_accounting(
            careful, TariffCache(), decode_accounting(packet), event_time(packet, NOW + timedelta(seconds=130))
        )
    assert quick.result is not None and quick.result.debited == locked.debited == 0
    card0, card1 = outcome_of(db, numbers[:1]), outcome_of(db, numbers[1:])
    assert card0 == tuple(tuple(("card0", *row[1:]) for row in rows) for rows in card1)
    assert [row[1] for row in card0[0]] == ["closed", "open"]
    assert_ledger_balanced(db)


def test_the_opening_seeks_the_holders_of_its_nas_session_ids_by_nas_and_id(db: Session, vault: PinVault) -> None:
    """Whether another live session holds a Start's NAS session id is sought on the live id index's two keys:
    sought by the id alone, the whole index was read for every batch and for each Start the hook opens — a
    cost growing with the sessions live on every NAS."""
    numbers = in_use(db, vault, 1)
    executed: list[tuple[str, object]] = []
    event.listen(db.connection(), "before_cursor_execute", lambda *args: executed.append((args[2], args[3])))
    assert bill(db, second_start(0, numbers), 130).result is not None
    [(opening, parameters)] = [(sql, params) for sql, params in executed if "held AS MATERIALIZED" in sql]
    db.execute(text("SET LOCAL enable_seqscan = off"))
    plan = [line for (line,) in db.connection().exec_driver_sql("EXPLAIN " + opening, parameters)]  # type: ignore[arg-type]
    holders = [i for i, line in enumerate(plan) if " on sessions o " in line]  # the `held` lookup
    assert holders and all("Index Cond: (nas_id =" in plan[i + 1] for i in holders), "\n".join(plan)


def test_a_start_whose_card_was_redeemed_since_its_login_is_left_to_the_locked_path(
    db: Session, vault: PinVault
) -> None:
    numbers = in_use(db, vault, 1)
    db.execute(text("UPDATE cards SET status = 'redeemed' WHERE number = :number"), {"number": numbers[0]})
    packet = second_start(0, numbers)
    now = event_time(packet, NOW + timedelta(seconds=130))
    assert record_accounting_without_lock(db, TariffCache(), NasCache(), decode_accounting(packet), now) is None
    pending = db.execute(text("SELECT status FROM sessions WHERE auth_token = 'a2-0'")).scalar_one()
    assert pending == "pending"


def test_a_start_whose_session_id_another_card_holds_takes_it_over_as_before(db: Session, vault: PinVault) -> None:
    numbers = in_use(db, vault, 2)
    # card 1 opens a session without a login under the id card 0's Start is about to claim
    said = {**SAID, "class": False, "status": "start", "card": 1, "sid": "2-0"}
    bill(db, attributes(said, numbers, "a"), 125)
    outcome = bill(db, second_start(0, numbers), 130)
    assert outcome.result is not None
    states = db.execute(
        text(
            "SELECT c.number, s.status, s.terminate_cause FROM sessions s JOIN cards c ON c.id = s.card_id "
            "WHERE s.acct_session_id = 'a2-0' ORDER BY s.id"
        )
    ).all()
    assert [tuple(row) for row in states] == [(numbers[0], "open", None), (numbers[1], "closed", "Lost-Service")]


def test_the_opening_leaves_out_a_login_whose_card_changed_after_it_was_read(db: Session, vault: PinVault) -> None:
    """The hook reads the login unlocked: a card redeemed between that read and the write is not opened."""
    numbers = in_use(db, vault, 1)
    packet = second_start(0, numbers)
    now = event_time(packet, NOW + timedelta(seconds=130))
    planned = plan_start(q.session_by_token(db, "a2-0"), decode_accounting(packet), now)
    assert planned is not None
    row = planned.row
    db.execute(text("UPDATE cards SET status = 'redeemed' WHERE number = :number"), {"number": numbers[0]})
    opening = q.SessionOpening(row.id, row.card_id, row.card_number, 0, row.account_id, planned.opening, now)
    assert q.open_sessions(db, [opening]) == set()


def test_a_start_whose_card_was_redeemed_since_its_login_is_acknowledged_and_not_billed(
    db: Session, vault: PinVault
) -> None:
    """A card added to another between its login and its (late) Start — a top-up is refused while the login
    holds its slot, so after the slot lapsed — has no value left to open a session on: the Start is refused
    like an unattributable packet (acknowledged, logged, not billed) rather than raising out of the rules (the
    hook answered FAIL and the NAS retried it forever; the importer stopped on it)."""
    batch = radius_world(db, vault, count=2)
    numbers = batch.numbers
    radius_login(db, vault, numbers[0], token="a1-0")
    cards.top_up(db, vault, numbers[1], numbers[0], batch.pins[0], NOW + timedelta(seconds=130), pending_ttl_s=120)
    ledger_before = db.execute(text("SELECT count(*) FROM ledger")).scalar_one()
    said = {**SAID, "status": "start", "card": 0, "sid": "1-0"}
    outcome = bill(db, attributes({**said, "delay": 130}, numbers, "a"), 140)
    assert outcome.result is None and outcome.unbilled == "refused", outcome
    assert "added to another" in outcome.why, outcome.why
    assert db.execute(text("SELECT count(*) FROM ledger")).scalar_one() == ledger_before
    assert_ledger_balanced(db)


def test_a_card_whose_login_holds_its_slot_cannot_be_added_to_another(db: Session, vault: PinVault) -> None:
    """The NAS was granted the card's value at login: moving it away meanwhile would let that session surf
    unbilled. Refused while the login's slot is live, allowed once it lapsed (no Start within the TTL)."""
    batch = radius_world(db, vault, count=2)
    radius_login(db, vault, batch.numbers[0], token="a1-0")
    with pytest.raises(CardRefused) as refused:
        cards.top_up(db, vault, batch.numbers[1], batch.numbers[0], batch.pins[0], NOW, pending_ttl_s=120)
    assert refused.value.refusal is Refusal.TOO_MANY_SESSIONS and "in use" in str(refused.value)
    later = NOW + timedelta(seconds=130)
    moved = cards.top_up(db, vault, batch.numbers[1], batch.numbers[0], batch.pins[0], later, pending_ttl_s=120)
    assert moved.amount > 0
    assert_ledger_balanced(db)
