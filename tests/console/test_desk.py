"""The desk's work through the real PostgreSQL: sell and print, help a guest, see the place, and the
audit row each action leaves."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from rlm_hotspot.core.cardcode import display_card_number
from rlm_hotspot.core.decisions import Refusal
from rlm_hotspot.pins import PinVault
from rlm_hotspot.services import desk
from rlm_hotspot.services.access import Policy, record_attempt
from rlm_hotspot.services.errors import ServiceError
from rlm_hotspot.services.sessions import open_portal_session
from rlm_hotspot.services.tariff_cache import TariffCache
from tests.conftest import NOW
from tests.console.conftest import audit_actions, hashed_batch, post, sheet_facts, sign_in
from tests.db import factories
from tests.db.helpers import assert_ledger_balanced
from tests.portal.conftest import Clock, World

PIN_FIELD = re.compile(r'data-field="pin">([^<]+)<')


def log_in_guest(engine: Engine, vault: PinVault, world: World, clock: Clock, index: int = 0) -> None:
    with Session(engine) as db, db.begin():
        open_portal_session(
            db,
            vault,
            TariffCache(),
            Policy(),
            card_text=world.cards.numbers[index],
            pin=world.cards.pins[index],
            hotspot_id=world.hotspot_id,
            client_ip="10.0.0.5",
            client_mac="02:00:00:00:00:05",
            now=clock(),
        )


def sold_cards(engine: Engine) -> list[tuple[str, str, int]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT c.number, s.name, cs.price FROM card_sales cs JOIN cards c ON c.id = cs.card_id "
                "JOIN staff s ON s.id = cs.staff_id ORDER BY c.id"
            )
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


def only_session_id(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT id FROM sessions")).scalar_one())


def test_selling_on_a_receipt_shows_each_pin_once_and_records_the_sale(
    client: FlaskClient, committed: Engine, world: World
) -> None:
    sign_in(client, "cashier")
    assert "6 in stock" in client.get("/sell").get_data(as_text=True)
    response = post(client, "/sell", batch=str(world.cards.batch_id), count="2", format="receipt-58")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    pins = PIN_FIELD.findall(page)
    by_number = dict(zip(world.cards.numbers, world.cards.pins, strict=True))
    sold = sold_cards(committed)
    assert [(number, name) for number, name, _ in sold] == [(n, "cashier") for n, _, _ in sold] and len(sold) == 2
    assert pins == [by_number[number] for number, _, _ in sold]
    assert all(display_card_number(number) in page for number, _, _ in sold)
    assert [price for _, _, price in sold] == [500, 500]
    assert "receipt-58.css" in page
    # never again: not on the stock page, not on the card's page, not in the audit trail
    assert "4 in stock" in client.get("/sell").get_data(as_text=True)
    sign_in(client, "admin")
    later = client.get(f"/card?number={sold[0][0]}").get_data(as_text=True) + client.get("/audit").get_data(
        as_text=True
    )
    assert all(pin not in later for pin in pins)
    with committed.connect() as conn:
        trail = conn.execute(text("SELECT detail::text FROM audit_trail WHERE action = 'card.sell'")).scalar_one()
    assert all(number in trail for number, _, _ in sold) and all(pin not in trail for pin in pins)


def test_a_sheet_is_the_clis_pdf_with_the_pins_and_a_qr_code_without_them(
    client: FlaskClient, committed: Engine, world: World, tmp_path: Path
) -> None:
    sign_in(client, "cashier")
    response = post(client, "/sell", batch=str(world.cards.batch_id), count="3", format="pdf", price="4.50")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    words, scanned = sheet_facts(response.data, tmp_path)
    sold = sold_cards(committed)
    assert [price for _, _, price in sold] == [450] * 3
    by_number = dict(zip(world.cards.numbers, world.cards.pins, strict=True))
    for number, _, _ in sold:
        assert by_number[number] in words
    assert sorted(scanned) == sorted(f"http://portal.example/?card={number}" for number, _, _ in sold)


def test_selling_more_than_the_stock_sells_nothing(client: FlaskClient, committed: Engine, world: World) -> None:
    sign_in(client, "cashier")
    response = post(client, "/sell", batch=str(world.cards.batch_id), count="7", format="receipt-80")
    assert response.status_code == 302
    assert "only 6 card(s) of this batch left" in client.get("/sell").get_data(as_text=True)
    assert sold_cards(committed) == []


def test_a_batch_with_hashed_pins_is_sold_by_number(
    client: FlaskClient, committed: Engine, vault: PinVault, world: World
) -> None:
    hashed = hashed_batch(committed, vault)
    sign_in(client, "cashier")
    post(client, "/sell", batch=str(hashed.batch_id), count="1", format="receipt-80")
    assert "sell its cards by number" in client.get("/sell").get_data(as_text=True)
    number = hashed.numbers[0]
    post(client, "/sell/mark", number=display_card_number(number), price="")
    assert sold_cards(committed) == [(number, "cashier", 1000)]
    post(client, "/sell/mark", number=number, price="")
    assert "this card was sold already" in client.get("/sell").get_data(as_text=True)
    assert [a for _, a, _ in audit_actions(committed)].count("card.mark_sold") == 1


def test_finding_a_card_catches_a_typo_and_shows_state_balance_deadline_sessions_statement(
    client: FlaskClient, committed: Engine, vault: PinVault, world: World, clock: Clock
) -> None:
    number = world.cards.numbers[0]
    log_in_guest(committed, vault, world, clock)
    sign_in(client, "cashier")
    typo = number[:-1] + str((int(number[-1]) + 1) % 10)
    refused = client.get(f"/card?number={typo}")
    assert refused.status_code == 404 and "typo" in refused.get_data(as_text=True)
    page = client.get(f"/card?number={display_card_number(number)}").get_data(as_text=True)
    assert "in use" in page and "€5.00" in page
    assert "15:00" in page and "(Europe/Moscow)" in page  # 12:00 UTC in the hotspot's local time
    assert f'data-session="{only_session_id(committed)}"' in page and "card_load" in page
    assert ("cashier", "card.view", number) in audit_actions(committed)


def test_ending_a_session_queues_it_for_the_worker(
    client: FlaskClient, committed: Engine, vault: PinVault, world: World, clock: Clock
) -> None:
    log_in_guest(committed, vault, world, clock)
    sign_in(client, "cashier")
    number, session_id = world.cards.numbers[0], only_session_id(committed)
    assert post(client, f"/session/{session_id}/end", number=number).status_code == 302
    with committed.connect() as conn:
        queued = conn.execute(text("SELECT session_id, reason, done_at FROM disconnects")).one()
    assert tuple(queued) == (session_id, "logout", None)
    assert "ending…" in client.get(f"/card?number={number}").get_data(as_text=True)
    assert ("cashier", "session.end", str(session_id)) in audit_actions(committed)


def test_a_lost_card_is_blocked_and_unblocked(client: FlaskClient, committed: Engine, world: World) -> None:
    number = world.cards.numbers[1]
    sign_in(client, "cashier")
    post(client, f"/card/{number}/block", blocked="1")
    assert "blocked" in client.get(f"/card?number={number}").get_data(as_text=True)
    with committed.connect() as conn:
        assert conn.execute(text("SELECT blocked FROM cards WHERE number = :n"), {"n": number}).scalar_one()
    assert "no: the card is blocked" in client.get(f"/card?number={number}").get_data(as_text=True)
    client.get("/language/ru")
    assert "нет: карта заблокирована" in client.get(f"/card?number={number}").get_data(as_text=True)
    post(client, f"/card/{number}/block", blocked="0")
    actions = [(a, s) for _, a, s in audit_actions(committed)]
    assert ("card.block", number) in actions and ("card.unblock", number) in actions


def test_a_lockout_is_lifted_at_the_desk(client: FlaskClient, committed: Engine, world: World, clock: Clock) -> None:
    number = world.cards.numbers[2]
    with Session(committed) as db, db.begin():
        for _ in range(Policy().lockout_attempts):
            record_attempt(
                db,
                card_text=number,
                client="10.0.0.9",
                hotspot_id=world.hotspot_id,
                source="portal",
                outcome=Refusal.WRONG_PIN,
                now=clock() - timedelta(minutes=1),
            )
    sign_in(client, "cashier")
    assert "locked out after too many wrong PINs" in client.get(f"/card?number={number}").get_data(as_text=True)
    post(client, f"/card/{number}/lockout")
    assert "locked out" not in client.get(f"/card?number={number}").get_data(as_text=True)
    assert ("cashier", "lockout.clear", f"card {number}") in audit_actions(committed)


def test_a_manager_adjusts_a_balance_through_the_ledger_with_operator_and_reason(
    client: FlaskClient, committed: Engine, vault: PinVault, world: World, clock: Clock
) -> None:
    number = world.cards.numbers[0]
    log_in_guest(committed, vault, world, clock)
    sign_in(client, "cashier")
    assert post(client, f"/card/{number}/adjust", amount="1.00", reason="outage").status_code == 403
    sign_in(client, "manager")
    post(client, f"/card/{number}/adjust", amount="1.50", reason="Wi-Fi was down for an hour")
    with committed.connect() as conn:
        row = conn.execute(
            text(
                "SELECT l.amount, l.cause, s.name, o.reason FROM ledger l "
                "JOIN ledger_operators o ON o.ledger_id = l.id "
                "JOIN staff s ON s.id = o.staff_id"
            )
        ).one()
        balance = conn.execute(text("SELECT balance FROM admin_cards WHERE number = :n"), {"n": number}).scalar_one()
    assert tuple(row) == (150, "adjustment", "manager", "Wi-Fi was down for an hour")
    assert balance == 650
    with Session(committed) as db:
        assert_ledger_balanced(db)
    post(client, f"/card/{number}/adjust", amount="1.50", reason=" ")
    assert "say why" in client.get(f"/card?number={number}").get_data(as_text=True)
    post(client, f"/card/{number}/adjust", amount="-0.50", reason="a goodwill credit too many")
    post(client, f"/card/{number}/adjust", amount="--0.50", reason="a typo")
    assert "bad amount" in client.get(f"/card?number={number}").get_data(as_text=True)
    with committed.connect() as conn:
        balance = conn.execute(text("SELECT balance FROM admin_cards WHERE number = :n"), {"n": number}).scalar_one()
    assert balance == 600


@pytest.mark.parametrize("part", ["", "?part=1"])
def test_who_is_online_per_hotspot(
    client: FlaskClient, committed: Engine, vault: PinVault, world: World, clock: Clock, part: str
) -> None:
    log_in_guest(committed, vault, world, clock)
    sign_in(client, "cashier")
    page = client.get(f"/online{part}").get_data(as_text=True)
    assert "cafe" in page and world.cards.numbers[0] in page and "10.0.0.5" in page
    assert ("<html" in page) == (part == "")


def test_the_overview_counts_todays_sales_and_draws_the_chart(
    client: FlaskClient, committed: Engine, world: World
) -> None:
    sign_in(client, "cashier")
    post(client, "/sell", batch=str(world.cards.batch_id), count="2", format="receipt-80", price="6.00")
    page = client.get("/").get_data(as_text=True)
    assert re.search(r'data-field="cards-today">2<', page)
    assert re.search(r'data-field="takings-today">€12.00<', page)
    assert page.count('class="bar-sold"') == 14 and "<svg" in page


def test_reports_as_pages_and_csv(
    client: FlaskClient, committed: Engine, vault: PinVault, world: World, clock: Clock
) -> None:
    log_in_guest(committed, vault, world, clock)
    sign_in(client, "manager")
    page = client.get("/reports/sales?by=hotspot").get_data(as_text=True)
    assert "cafe" in page and "€5.00" in page
    csv = client.get("/reports/sales?by=hotspot&format=csv")
    assert csv.mimetype == "text/csv"
    assert csv.get_data(as_text=True).splitlines() == [
        "hotspot,cards_activated,topups,value_loaded",
        "cafe,1,0,5.00 EUR",
    ]
    assert ("manager", "report.csv", "sales") in audit_actions(committed)


def test_an_admin_creates_a_staff_account_and_blocks_a_batch(
    client: FlaskClient, committed: Engine, world: World
) -> None:
    sign_in(client, "admin")
    post(client, "/admin/staff", name="boris", role="cashier", password="short")
    assert "at least 10 characters" in client.get("/admin/staff").get_data(as_text=True)
    post(client, "/admin/staff", name="boris", role="cashier", password="boris-password-1")
    assert sign_in(client.application.test_client(), "boris", "boris-password-1").status_code == 302
    batch = world.cards.batch_id
    post(client, f"/admin/batch/{batch}/block", blocked="1")
    with committed.connect() as conn:
        assert conn.execute(text("SELECT bool_and(blocked) FROM cards")).scalar_one()
    actions = [(a, s) for _, a, s in audit_actions(committed)]
    assert ("staff.add", "boris") in actions and ("batch.block", str(batch)) in actions


def test_a_top_up_at_the_desk_moves_a_second_cards_value_with_the_operator(
    client: FlaskClient, committed: Engine, vault: PinVault, world: World, clock: Clock
) -> None:
    target, source = world.cards.numbers[0], world.cards.numbers[3]
    log_in_guest(committed, vault, world, clock)
    sign_in(client, "cashier")
    post(client, f"/card/{target}/topup", source=source, pin="WRONG")
    assert "Wrong PIN" in client.get(f"/card?number={target}").get_data(as_text=True)
    post(client, f"/card/{target}/topup", source=display_card_number(source), pin=world.cards.pins[3].lower())
    page = client.get(f"/card?number={target}").get_data(as_text=True)
    assert "€10.00" in page and "top-up from card" in page
    with committed.connect() as conn:
        operators = conn.execute(
            text("SELECT l.idempotency_key, s.name FROM ledger_operators o JOIN ledger l ON l.id = o.ledger_id "
                 "JOIN staff s ON s.id = o.staff_id ORDER BY l.id")
        ).all()  # fmt: skip
        source_id = conn.execute(text("SELECT id FROM cards WHERE number = :n"), {"n": source}).scalar_one()
    assert [tuple(r) for r in operators] == [(f"topup_in:{source_id}", "cashier")]  # a new card has no outgoing row
    with Session(committed) as db:
        assert_ledger_balanced(db)
    actions = [(a, s) for _, a, s in audit_actions(committed)]
    assert ("card.topup.refused", target) in actions and ("card.topup", target) in actions
    with committed.connect() as conn:
        trail = conn.execute(text("SELECT string_agg(detail::text, ' ') FROM audit_trail")).scalar_one()
    assert world.cards.pins[3] not in trail and "WRONG" not in trail


def test_a_reprint_is_a_managers_audited_act(client: FlaskClient, committed: Engine, world: World) -> None:
    number = world.cards.numbers[5]
    sign_in(client, "cashier")
    assert post(client, f"/card/{number}/reprint").status_code == 403
    sign_in(client, "manager")
    slip = post(client, f"/card/{number}/reprint").get_data(as_text=True)
    assert PIN_FIELD.findall(slip) == [world.cards.pins[5]] and "Reprinted" in slip
    assert ("manager", "card.reprint", number) in audit_actions(committed)


def test_an_admin_makes_a_batch_whose_pins_are_shown_only_when_sold(
    client: FlaskClient, committed: Engine, world: World
) -> None:
    sign_in(client, "admin")
    post(client, "/admin/batch", count="abc", face_value="2.00")
    assert "Type a number of cards." in client.get("/admin/setup").get_data(as_text=True)
    response = post(
        client, "/admin/batch", count="4", face_value="2.00", name="lobby", hotspot="cafe", validity_days="7"
    )
    assert "PIN" not in response.get_data(as_text=True)
    page = client.get("/admin/setup").get_data(as_text=True)
    assert "4 cards made" in page and "lobby" in page
    with committed.connect() as conn:
        batch = conn.execute(
            text("SELECT id, card_count, face_value, pin_mode, validity_seconds FROM card_batches WHERE name = 'lobby'")
        ).one()
    assert tuple(batch)[1:] == (4, 200, "encrypted", 7 * 86400)
    assert "4 in stock" in client.get("/sell").get_data(as_text=True)
    assert ("admin", "batch.generate", str(batch.id)) in audit_actions(committed)


def test_two_desks_selling_at_once_never_get_the_same_card(
    committed: Engine, vault: PinVault, world: World, people: dict[str, int]
) -> None:
    batch = world.cards.batch_id
    with Session(committed) as first, first.begin():
        one = desk.sell(first, vault, staff_id=people["cashier"], batch_id=batch, count=3, price_each=None, now=NOW)
        with Session(committed) as second, second.begin():  # while the first desk's transaction is open
            other = desk.sell(
                second, vault, staff_id=people["manager"], batch_id=batch, count=3, price_each=None, now=NOW
            )
            with pytest.raises(ServiceError, match="only 0 card"):
                desk.sell(second, vault, staff_id=people["manager"], batch_id=batch, count=1, price_each=None, now=NOW)
    numbers = [c.number for c in one.cards] + [c.number for c in other.cards]
    assert sorted(numbers) == sorted(world.cards.numbers[:6])
    assert len(sold_cards(committed)) == 6


def test_a_refund_is_a_managers_ledger_row_with_operator_and_reason_and_leaves_the_till(
    client: FlaskClient, committed: Engine, vault: PinVault, world: World, clock: Clock
) -> None:
    used, unused = world.cards.numbers[0], world.cards.numbers[5]
    log_in_guest(committed, vault, world, clock)
    sign_in(client, "cashier")
    assert post(client, f"/card/{used}/refund", amount="1.00", reason="outage").status_code == 403
    sign_in(client, "manager")
    post(client, f"/card/{used}/refund", amount="5.01", reason="leaving early")
    assert "cannot exceed the card" in client.get(f"/card?number={used}").get_data(as_text=True)
    post(client, f"/card/{used}/refund", amount="2.00", reason=" ")
    assert "say why" in client.get(f"/card?number={used}").get_data(as_text=True)
    post(client, f"/card/{used}/refund", amount="2.00", reason="leaving early")
    post(client, f"/card/{unused}/refund", amount="5.00", reason="bought by mistake")  # never used: activated first
    with committed.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT c.number, l.amount, s.name, o.reason FROM ledger l JOIN cards c ON c.id = l.card_id "
                "JOIN ledger_operators o ON o.ledger_id = l.id JOIN staff s ON s.id = o.staff_id "
                "WHERE l.cause = 'refund' ORDER BY l.id"
            )
        ).all()
        balances = dict(conn.execute(text("SELECT number, balance FROM admin_cards WHERE number IN :n"),
                                     {"n": (used, unused)}).all())  # fmt: skip
    assert [tuple(r) for r in rows] == [
        (used, -200, "manager", "leaving early"),
        (unused, -500, "manager", "bought by mistake"),
    ]
    assert balances == {used: 300, unused: 0}
    with Session(committed) as db:
        assert_ledger_balanced(db)
    assert re.search(r'data-field="refunded-today">€7.00<', client.get("/").get_data(as_text=True))
    revenue = client.get("/reports/revenue?by=hotspot&format=csv").get_data(as_text=True).splitlines()
    assert len(revenue) == 1  # money paid back is not money the guests used
    refunds = [(n, s) for n, a, s in audit_actions(committed) if a == "card.refund"]
    assert refunds == [("manager", used), ("manager", unused)]  # a refused refund leaves no trace


def test_wrong_pins_at_the_desks_top_up_lock_the_second_card_out(
    client: FlaskClient, committed: Engine, vault: PinVault, world: World, clock: Clock
) -> None:
    target, source = world.cards.numbers[0], world.cards.numbers[3]
    sign_in(client, "cashier")
    for _ in range(Policy().lockout_attempts):
        post(client, f"/card/{target}/topup", source=source, pin="WRONG")
    post(client, f"/card/{target}/topup", source=source, pin=world.cards.pins[3])  # the right PIN, too late
    assert "locked out" in client.get(f"/card?number={target}").get_data(as_text=True)
    assert "locked out" in client.get(f"/card?number={source}").get_data(as_text=True)
    with committed.connect() as conn:
        attempts = conn.execute(
            text("SELECT source, outcome, count(*) FROM login_attempts WHERE card_number = :n GROUP BY 1, 2"),
            {"n": source},
        ).all()
        moved = conn.execute(text("SELECT count(*) FROM ledger WHERE cause = 'topup'")).scalar_one()
    assert sorted(tuple(r) for r in attempts) == [("desk", "locked_out", 1), ("desk", "wrong_pin", 5)]
    assert moved == 0
    post(client, f"/card/{source}/lockout")  # lifted at the desk, the right PIN works again
    post(client, f"/card/{target}/topup", source=source, pin=world.cards.pins[3])
    assert "€10.00" in client.get(f"/card?number={target}").get_data(as_text=True)


def test_an_admins_face_value_presets_sell_from_a_batch_valid_at_the_hotspot(
    client: FlaskClient, committed: Engine, vault: PinVault, world: World
) -> None:
    with Session(committed) as db, db.begin():  # 10.00 cards for any hotspot, and some for another hotspot
        factories.hotspot(db, name="bar")
        anywhere = factories.batch(db, vault, count=2, face_value=1000)
        factories.batch(db, vault, count=5, face_value=1000, hotspot="bar", use_before=NOW + timedelta(days=1))
    sign_in(client, "cashier")
    assert post(client, "/admin/presets", hotspot="cafe", face_value="10").status_code == 403
    sign_in(client, "admin")
    post(client, "/admin/presets", hotspot="cafe", face_value="10.00")
    post(client, "/admin/presets", hotspot="cafe", face_value="5")
    post(client, "/admin/presets", hotspot="cafe", face_value="0")
    assert "above zero" in client.get("/admin/setup").get_data(as_text=True)
    post(client, "/admin/presets", hotspot="nowhere", face_value="5")
    assert "no hotspot" in client.get("/admin/setup").get_data(as_text=True)
    sign_in(client, "cashier")
    page = client.get("/sell").get_data(as_text=True)
    cafe = world.hotspot_id
    assert f'id="count-preset-{cafe}-500" name="count" type="number" min="0" max="100" value="1"' in page  # first line
    assert f'value="preset:{cafe}:1000"' in page
    slip = post(client, "/sell", batch=f"preset:{cafe}:1000", count="2", format="receipt-80").get_data(as_text=True)
    assert PIN_FIELD.findall(slip) == anywhere.pins  # not the other hotspot's, though it lapses sooner
    post(client, "/sell", batch=f"preset:{cafe}:1000", count="1", format="receipt-80")
    refusal = "only 0 card(s) of this face value left to sell at this hotspot"
    assert refusal in client.get("/sell").get_data(as_text=True)
    sign_in(client, "admin")
    post(client, "/admin/presets", hotspot="cafe", face_value="10.00 EUR", offered="0")
    assert f'value="preset:{cafe}:1000"' not in client.get("/sell").get_data(as_text=True)
    actions = [(a, s) for _, a, s in audit_actions(committed) if a.startswith("preset")]
    assert actions == [("preset.add", "cafe"), ("preset.add", "cafe"), ("preset.remove", "cafe")]


def test_one_sale_holds_several_face_values_from_several_batches_on_one_receipt_and_the_overview(
    client: FlaskClient, committed: Engine, vault: PinVault, world: World
) -> None:
    with Session(committed) as db, db.begin():  # the 10.00 cards are split over two batches
        lapsing = factories.batch(db, vault, count=2, face_value=1000, use_before=NOW + timedelta(days=2))
        later = factories.batch(db, vault, count=3, face_value=1000, hotspot="cafe")
        desk.set_preset(db, "cafe", 1000, offered=True)
    sign_in(client, "cashier")
    ten, five = f"preset:{world.hotspot_id}:1000", str(world.cards.batch_id)
    post(client, "/sell", batch=[five, ten], count=["1", "6"], format="receipt-80")  # the second line is short
    assert "only 5 card(s) of this face value left" in client.get("/sell").get_data(as_text=True)
    post(client, "/sell", batch=[ten, five], count=["1", "1"], price="4.00", format="receipt-80")
    assert "type a price only when selling cards of one face value" in client.get("/sell").get_data(as_text=True)
    assert sold_cards(committed) == []  # nothing of a refused sale is sold

    slip = post(client, "/sell", batch=[ten, five], count=["3", "1"], format="receipt-80").get_data(as_text=True)
    assert PIN_FIELD.findall(slip) == [*lapsing.pins, later.pins[0], world.cards.pins[0]]  # soonest to lapse first
    assert re.findall(r'data-field="face-value">([^<]+)<', slip) == ["€10.00"] * 3 + ["€5.00"]
    assert 'data-field="total">€35.00<' in slip
    with committed.connect() as conn:
        (detail,) = conn.execute(text("SELECT detail FROM audit_trail WHERE action = 'card.sell'")).scalars()
    assert [(line["batch"], len(line["cards"]), line["price_each"]) for line in detail["lines"]] == [
        (lapsing.batch_id, 2, 1000), (later.batch_id, 1, 1000), (world.cards.batch_id, 1, 500),
    ]  # fmt: skip
    assert detail["total"] == 3500
    assert not any(pin in str(detail) for pin in PIN_FIELD.findall(slip))
    overview = client.get("/").get_data(as_text=True)
    assert 'data-field="cards-today">4<' in overview and 'data-field="takings-today">€35.00<' in overview
    sales_today = re.sub(r"\s+", " ", overview.split('id="sales-today"')[1].split("</table>")[0])
    assert "<td>€5.00</td><td>1</td><td>€5.00</td>" in sales_today
    assert "<td>€10.00</td><td>3</td><td>€30.00</td>" in sales_today
    sheet = post(client, "/sell", batch=[ten, five], count=["2", "1"], format="pdf")
    assert sheet.mimetype == "application/pdf"
    assert f"cards-{later.series:04d}-{world.cards.series:04d}.pdf" in sheet.headers["Content-Disposition"]


def test_an_admin_makes_and_changes_tariffs_hotspots_and_nas_under_the_clis_rules(
    client: FlaskClient, committed: Engine, world: World
) -> None:
    sign_in(client, "manager")
    assert post(client, "/admin/tariff", name="day", time_price="1").status_code == 403
    sign_in(client, "admin")
    post(client, "/admin/tariff", name="day", time_unit_seconds="3600")
    assert "all prices are zero" in client.get("/admin/setup").get_data(as_text=True)
    post(client, "/admin/tariff", name="day", time_price="2.00", time_unit_seconds="3600", simultaneous_use="2")
    post(client, "/admin/tariff/change", name="day", simultaneous_use="3", traffic_price="0.10")  # never a price
    post(client, "/admin/tariff/change", name="day", simultaneous_use="0")
    assert "simultaneous use must be at least 1" in client.get("/admin/setup").get_data(as_text=True)
    post(client, "/admin/hotspot", name="lobby", timezone="Mars/Olympus", tariff="day")
    assert "unknown time zone" in client.get("/admin/setup").get_data(as_text=True)
    post(client, "/admin/hotspot", name="lobby", timezone="Europe/Moscow", tariff="day", mode="radius",
         traffic_meter="radius")  # fmt: skip
    post(client, "/admin/hotspot/change", name="cafe", tariff="day", portal_url="https://cafe.example/")
    post(client, "/admin/nas", name="ap1", hotspot="lobby", ip_address="10.9.0.1", secret="s3cret", vendor="mikrotik")
    post(client, "/admin/nas", name="ap2", hotspot="lobby", ip_address="10.9.0.1", secret="s3cret")
    assert "already exists" in client.get("/admin/setup").get_data(as_text=True)
    post(client, "/admin/nas", name="ap2", hotspot="lobby", ip_address="10.9.0.2", secret="other-secret")
    post(client, "/admin/nas/change", name="ap2", ip_address="10.9.0.1")
    assert "already has that name or address" in client.get("/admin/setup").get_data(as_text=True)
    post(client, "/admin/nas/change", name="ap2", hotspot="cafe", secret="new-secret", coa_port="1700")
    with committed.connect() as conn:
        tariff = conn.execute(text("SELECT time_price, time_unit_seconds, traffic_price, traffic_unit_bytes, "
                                   "simultaneous_use FROM tariffs WHERE name = 'day'")).one()  # fmt: skip
        cafe = conn.execute(text("SELECT t.name, h.portal_url FROM hotspots h JOIN tariffs t ON t.id = h.tariff_id "
                                 "WHERE h.name = 'cafe'")).one()  # fmt: skip
        lobby = conn.execute(text("SELECT timezone FROM hotspots WHERE name = 'lobby'")).scalar_one()
        nas = conn.execute(text("SELECT n.name, host(n.ip_address), h.name, n.secret, n.coa_port, n.vendor "
                                "FROM nas n JOIN hotspots h ON h.id = n.hotspot_id ORDER BY n.id")).all()  # fmt: skip
        trail = conn.execute(text("SELECT string_agg(detail::text, ' ') FROM audit_trail")).scalar_one()
    assert tuple(tariff) == (200, 3600, 0, 1_000_000, 3)
    assert tuple(cafe) == ("day", "https://cafe.example/")
    assert lobby == "Europe/Moscow"
    assert [tuple(r) for r in nas] == [
        ("ap1", "10.9.0.1", "lobby", "s3cret", 3799, "mikrotik"),
        ("ap2", "10.9.0.2", "cafe", "new-secret", 1700, "generic"),
    ]
    assert "s3cret" not in trail and "new-secret" not in trail
    actions = [(a, s) for _, a, s in audit_actions(committed) if a.split(".")[0] in ("tariff", "hotspot", "nas")]
    assert actions == [
        ("tariff.add", "day"), ("tariff.change", "day"), ("hotspot.add", "lobby"), ("hotspot.change", "cafe"),
        ("nas.add", "ap1"), ("nas.add", "ap2"), ("nas.change", "ap2"),
    ]  # fmt: skip


def test_usage_and_money_per_hour_of_the_desks_day(
    client: FlaskClient, committed: Engine, vault: PinVault, world: World, clock: Clock
) -> None:
    log_in_guest(committed, vault, world, clock)  # 12:00 UTC
    sign_in(client, "cashier")
    post(client, "/sell", batch=str(world.cards.batch_id), count="2", format="receipt-80", price="6.00")
    assert 'id="per-hour"' in client.get("/").get_data(as_text=True)
    page = client.get("/hours").get_data(as_text=True)
    assert page.count('class="bar-sold"') == 24 and "2026-11-25" in page
    noon = re.search(r'<tr data-hour="12">(.*?)</tr>', page)
    assert noon and "<td>1</td>" in noon.group(1) and "€12.00" in noon.group(1)
    assert "€12.00" not in re.search(r'<tr data-hour="11">(.*?)</tr>', page).group(1)  # type: ignore[union-attr]
    assert "€12.00" not in client.get("/hours?day=2026-11-24").get_data(as_text=True)
    assert "YYYY-MM-DD" in client.get("/hours?day=yesterday", follow_redirects=True).get_data(as_text=True)


def test_setup_takes_a_tariffs_bands_free_networks_and_a_hotspots_timings_as_hotspotctl_does(
    client: FlaskClient, committed: Engine, world: World
) -> None:
    sign_in(client, "admin")
    tariff = {"name": "night", "time_price": "1.20", "time_unit_seconds": "3600", "traffic_direction": "download"}
    post(client, "/admin/tariff", **tariff, bands="07:00=1.20\n22:00=0.6O")  # a letter O typed for a zero
    assert "bad band &#39;22:00=0.6O&#39;" in client.get("/admin/setup").get_data(as_text=True)
    post(client, "/admin/tariff", **tariff, bands="22:00=0.60")
    assert "The base time price €1.20 would be charged at no time of day" in client.get("/admin/setup").get_data(
        as_text=True
    )
    post(client, "/admin/tariff", **tariff, bands="07:00=1.20", free_networks="10.9.0.1/16")
    assert "bad network &#39;10.9.0.1/16&#39;" in client.get("/admin/setup").get_data(as_text=True)
    post(client, "/admin/tariff", **tariff, time_increment="1m", bands="22:00=0.60\r\n07:00=1.20",
         free_networks="10.9.0.0/16\r\n192.0.2.7", rate_down_kbps="20000")  # fmt: skip
    page = client.get("/admin/setup").get_data(as_text=True)
    assert "night is saved." in page and "07:00 €1.20<br>22:00 €0.60" in page and "10.9.0.0/16 192.0.2.7/32" in page

    post(client, "/admin/hotspot/change", name="cafe", heartbeat_timeout="ninety")
    assert "bad duration &#39;ninety&#39;" in client.get("/admin/setup").get_data(as_text=True)
    post(client, "/admin/hotspot/change", name="cafe", heartbeat="grace", heartbeat_timeout="2m",
         idle_timeout="10m", max_rate_kbps="50000", interim_interval="5m")  # fmt: skip
    post(client, "/admin/hotspot", name="hall", timezone="UTC", tariff="night", mode="radius", traffic_meter="radius",
         idle_timeout="off", interim_interval="30s")  # fmt: skip
    assert "at least 60 s" in client.get("/admin/setup").get_data(as_text=True)
    post(client, "/admin/hotspot", name="hall", timezone="UTC", tariff="night", mode="radius", traffic_meter="radius",
         max_rate_kbps="8000")  # fmt: skip
    post(client, "/admin/hotspot/change", name="cafe", idle_timeout="off")
    with committed.connect() as conn:
        stored = conn.execute(text(
            "SELECT time_increment_seconds, traffic_direction, rate_down_kbps, "
            "(SELECT array_agg(start_minute || '=' || time_price ORDER BY start_minute) FROM tariff_bands b "
            " WHERE b.tariff_id = t.id), "
            "(SELECT array_agg(network::text ORDER BY network) FROM tariff_free_networks n WHERE n.tariff_id = t.id) "
            "FROM tariffs t WHERE name = 'night'")).one()  # fmt: skip
        hotspots = conn.execute(text("SELECT name, heartbeat, heartbeat_timeout, idle_timeout, max_rate_kbps, "
                                     "interim_interval FROM hotspots ORDER BY id")).all()  # fmt: skip
        trail = conn.execute(text("SELECT action, subject, detail FROM audit_trail WHERE action LIKE 'hotspot.%' "
                                  "OR action LIKE 'tariff.%' ORDER BY id")).all()  # fmt: skip
    assert tuple(stored) == (60, "download", 20000, ["420=120", "1320=60"], ["10.9.0.0/16", "192.0.2.7/32"])
    assert [tuple(h)[1:] for h in hotspots if h.name in ("cafe", "hall")] == [
        ("grace", 120, None, 50000, 300),  # the idle timeout set to 10 minutes, then turned off
        ("off", 90, None, 8000, 300),  # a RADIUS hotspot's heartbeat is off unless asked, as with hotspotctl
    ]
    assert [(a, s) for a, s, _ in trail] == [
        ("tariff.add", "night"), ("hotspot.change", "cafe"), ("hotspot.add", "hall"), ("hotspot.change", "cafe"),
    ]  # fmt: skip
    assert trail[0].detail["bands"] == [[420, 120, 0], [1320, 60, 0]]
    # what changed (the interim interval was 5 minutes already)
    changed = {"heartbeat": "grace", "heartbeat_timeout": 120, "idle_timeout": 600, "max_rate_kbps": 50000}
    assert trail[1].detail == changed
    assert trail[3].detail == {"idle_timeout": None}
