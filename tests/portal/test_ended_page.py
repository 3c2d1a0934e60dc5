"""The page a guest sees when the session has ended says why and what to do, in English and Russian, and
never shows a negative amount; in RADIUS mode too, after the NAS ended the session (or CoovaChilli's
logoff sent the guest back)."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from rlm_hotspot.db.ledger import post_entry
from rlm_hotspot.pins import PinVault
from tests.conftest import NOW
from tests.db import factories
from tests.portal.conftest import World, login

ENDED = {  # terminate cause -> what the page says (en, ru)
    "Card-Blocked": ("this card has been blocked. Please ask at the desk.", "карта заблокирована"),
    "Balance-Exhausted": ("log in with a new card", "деньги на карте закончились"),
    "Card-Expired": ("this card has expired", "срок действия карты истёк"),
    "Heartbeat-Timeout": ("this page was closed or stopped", "эта страница была закрыта или остановлена"),
    "Page-Hidden": ("this page stayed in the background", "в фоне"),
    "Page-Closed": ("this page was closed.", "эта страница была закрыта."),
    "User-Request": ("You have logged out.", "Вы вышли."),
    "Lost-Carrier": ("The hotspot has ended your session", "Точка доступа завершила сеанс"),
}


def end_session(engine: Engine, cause: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE sessions SET status = 'closed', stopped_at = last_seen_at, terminate_cause = :cause "
                "WHERE status <> 'closed'"
            ),
            {"cause": cause},
        )


def test_each_cause_is_told_in_english_and_russian(app: Flask, committed: Engine, vault: PinVault) -> None:
    with Session(committed) as db, db.begin():
        cards = factories.batch(db, vault, count=len(ENDED), hotspot="cafe")
    for i, (cause, (english, russian)) in enumerate(ENDED.items()):
        client = app.test_client()
        login(client, cards.numbers[i], cards.pins[i])
        end_session(committed, cause)
        page = client.get("/status").get_data(as_text=True)
        assert english in page, cause
        client.set_cookie("lang", "ru")
        assert russian in client.get("/status").get_data(as_text=True), cause


def test_an_overshoot_past_zero_shows_as_an_empty_card(app: Flask, world: World, committed: Engine) -> None:
    client = app.test_client()
    login(client, world.cards.numbers[0], world.cards.pins[0])
    with Session(committed) as db, db.begin():
        account_id = db.execute(text("SELECT account_id FROM sessions")).scalar_one()
        post_entry(db, account_id=account_id, amount=-502, cause="time", key="overshoot", now=NOW)
    end_session(committed, "Balance-Exhausted")
    page = client.get("/status").get_data(as_text=True)
    assert '<p class="amount" data-field="balance">€0.00</p>' in page and "-€" not in page and "\u2212" not in page
    assert "used up. To go on, log in with a new card." in page
