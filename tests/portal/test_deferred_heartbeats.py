"""Heartbeats rated in memory and posted together (`heartbeat_write_delay_ms`): the guest sees the same
numbers, the database gets the same money and marks a moment later, and nothing is lost or billed twice
when the session changes elsewhere, the database is away, or the page falls silent."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from portal import create_app
from portal.context import PortalContext
from rlm_hotspot.db import sessions as sessions_db
from tests.conftest import NOW
from tests.db.helpers import assert_ledger_balanced
from tests.portal.conftest import Clock, World, csrf_of, login, portal_settings
from tests.portal.test_heartbeat_shortcut import beat


@pytest.fixture
def by_hand(app: Flask, monkeypatch: pytest.MonkeyPatch) -> PortalContext:
    """The app's context with its poster thread kept from starting: the test posts when it chooses."""
    context: PortalContext = app.extensions["hotspot_portal"]
    assert context.poster is not None, "the default settings defer heartbeats"
    monkeypatch.setattr(context.poster, "ensure_running", lambda: None)
    return context


def second_process(
    database_url: str, key_file, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> tuple[Flask, PortalContext]:  # type: ignore[no-untyped-def]
    """Another portal process on the same database (as gunicorn's other worker), its poster kept from starting too."""
    other = create_app(portal_settings(database_url, key_file), clock=clock)
    context: PortalContext = other.extensions["hotspot_portal"]
    monkeypatch.setattr(context.poster, "ensure_running", lambda: None)
    return other, context


def session_row(engine: Engine) -> tuple[int, datetime | None, int]:
    """The only session's online seconds, last heartbeat and its card's balance."""
    with engine.connect() as db:
        return db.execute(
            text(
                "SELECT s.seconds, s.last_heartbeat_at, a.balance FROM sessions s "
                "JOIN cards c ON c.id = s.card_id JOIN accounts a ON a.id = c.account_id"
            )
        ).one()


def time_debits(engine: Engine) -> list[int]:
    with engine.connect() as db:
        return list(db.execute(text("SELECT amount FROM ledger WHERE cause = 'time' ORDER BY id")).scalars())


def online_with_beats(client: FlaskClient, world: World, clock: Clock, *gaps: float) -> dict:
    """Log in with the first card, then send a heartbeat after each gap (seconds); the last reply."""
    login(client, world.cards.numbers[0], world.cards.pins[0])
    reply: dict = {}
    for gap in gaps:
        clock.advance(gap)
        reply = beat(client).get_json()
    return reply


def test_heartbeats_are_answered_at_once_and_posted_together(
    client: FlaskClient, world: World, clock: Clock, by_hand: PortalContext, committed: Engine
) -> None:
    login(client, world.cards.numbers[0], world.cards.pins[0])
    at_login = session_row(committed)
    replies = []
    for _ in range(4):
        clock.advance(10)
        replies.append(beat(client).get_json()["balance_minor"])
    assert replies == [490, 480, 470, 460]  # 0.60 per minute, per second: what the guest sees at once
    assert session_row(committed) == at_login  # nothing posted yet (the first one read the session)
    assert by_hand.post_rated_heartbeats() == 1  # the four are one post: the latest restates them
    assert session_row(committed) == (40, NOW + timedelta(seconds=40), 460)
    assert time_debits(committed) == [-40]
    assert by_hand.post_rated_heartbeats() == 0
    clock.advance(10)
    assert beat(client).get_json()["balance_minor"] == 450  # goes on from the posted view
    assert by_hand.post_rated_heartbeats() == 1
    assert session_row(committed) == (50, NOW + timedelta(seconds=50), 450)
    assert time_debits(committed) == [-40, -10]
    with Session(committed) as db:
        assert_ledger_balanced(db)


def test_a_page_load_posts_at_once(
    client: FlaskClient, world: World, clock: Clock, by_hand: PortalContext, committed: Engine
) -> None:
    online_with_beats(client, world, clock, 10, 10)  # both rated
    clock.advance(10)
    assert "€4.70" in client.get("/status").get_data(as_text=True)
    assert session_row(committed) == (30, NOW + timedelta(seconds=30), 470)  # supersedes the rated one
    assert by_hand.post_rated_heartbeats() == 0


def test_the_pages_refresh_without_javascript_is_held_like_a_heartbeat(
    client: FlaskClient, world: World, clock: Clock, by_hand: PortalContext, committed: Engine
) -> None:
    online_with_beats(client, world, clock, 10)
    at_first_beat = session_row(committed)
    clock.advance(10)
    page = client.get("/status?refresh=1").get_data(as_text=True)
    assert "€4.80" in page and 'content="10;url=/status?refresh=1"' in page  # it refreshes itself again
    assert session_row(committed) == at_first_beat  # rated in memory, not posted yet
    assert by_hand.post_rated_heartbeats() == 1
    assert session_row(committed) == (20, NOW + timedelta(seconds=20), 480)
    assert time_debits(committed) == [-20]


def test_a_session_changed_elsewhere_is_read_again_and_its_heartbeat_still_written(
    client: FlaskClient, world: World, clock: Clock, by_hand: PortalContext, committed: Engine
) -> None:
    online_with_beats(client, world, clock, 10, 10)  # rated, on the view read at login + 10 s
    with committed.begin() as db:  # the NetFlow importer bills some traffic meanwhile
        db.execute(text("UPDATE sessions SET traffic_cost_num = traffic_cost_num + 1, input_octets = 1000"))
    assert by_hand.post_rated_heartbeats() == 1
    seconds, last_heartbeat, _ = session_row(committed)
    assert (seconds, last_heartbeat) == (20, NOW + timedelta(seconds=20))  # posted on the fresh row
    assert time_debits(committed) == [-20]


def test_a_session_closed_elsewhere_drops_its_held_heartbeat_and_the_next_one_says_so(
    client: FlaskClient, world: World, clock: Clock, by_hand: PortalContext, committed: Engine
) -> None:
    assert online_with_beats(client, world, clock, 10, 10)["open"]  # rated
    with committed.begin() as db:  # the worker closes it (say, the card was blocked)
        db.execute(text("UPDATE sessions SET status = 'closed', stopped_at = :at"), {"at": NOW + timedelta(seconds=15)})
    assert by_hand.post_rated_heartbeats() == 1
    assert session_row(committed)[0] == 0 and time_debits(committed) == []  # nothing billed after the close
    clock.advance(10)
    assert beat(client).get_json()["open"] is False


def test_a_held_heartbeat_counts_for_the_timeout_and_a_silent_page_is_billed_until_cut(
    client: FlaskClient, world: World, clock: Clock, by_hand: PortalContext
) -> None:
    online_with_beats(client, world, clock, 10, 10)  # rated: the last sign of life, at 20 s
    clock.advance(25)  # 35 s after the posted heartbeat, 25 s after the rated one
    assert "You are online" in client.get("/status").get_data(as_text=True)
    clock.advance(31)  # past the 30 s timeout
    page = client.get("/status").get_data(as_text=True)
    assert "closed or stopped for more than 30 seconds" in page and "€4.24" in page  # 76 s: cut now


def test_login_top_up_and_logout_see_every_held_debit(
    client: FlaskClient, world: World, clock: Clock, by_hand: PortalContext
) -> None:
    online_with_beats(client, world, clock, 10, 20)  # rated: 4.70
    form = {"card": world.cards.numbers[1], "pin": world.cards.pins[1], "csrf_token": csrf_of(client, "/status")}
    page = client.post("/topup", data=form, follow_redirects=True).get_data(as_text=True)
    assert '<p class="amount" data-field="balance">€9.70</p>' in page


def test_a_database_outage_keeps_held_heartbeats_until_it_is_back(
    client: FlaskClient, world: World, clock: Clock, by_hand: PortalContext, committed: Engine, database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    assert online_with_beats(client, world, clock, 10, 10)["balance_minor"] == 480  # rated
    engine = by_hand.engine
    by_hand.engine = create_engine(database_url.replace("hotspot_test", "no_such_database"))
    with caplog.at_level(logging.ERROR):
        assert by_hand.poster is not None and by_hand.poster.post_now() == 0
    assert "could not post the heartbeats" in caplog.text
    by_hand.engine.dispose()
    by_hand.engine = engine
    assert by_hand.post_rated_heartbeats() == 1
    assert session_row(committed) == (20, NOW + timedelta(seconds=20), 480)


def test_the_poster_thread_posts_within_its_delay_and_on_close(
    database_url: str, key_file, world: World, committed: Engine
) -> None:  # type: ignore[no-untyped-def]
    app = create_app(portal_settings(database_url, key_file, heartbeat_write_delay_ms=50))  # the real clock
    client = app.test_client()
    login(client, world.cards.numbers[0], world.cards.pins[0])
    beat(client)
    first = session_row(committed)[1]
    beat(client)  # rated, then posted by the thread
    deadline = time.monotonic() + 5
    while session_row(committed)[1] == first:
        assert time.monotonic() < deadline, "the poster thread posted nothing"
        time.sleep(0.05)
    context: PortalContext = app.extensions["hotspot_portal"]
    assert context.poster is not None
    context.poster.delay_s = 3600  # the thread now sleeps: only closing posts the next one
    time.sleep(0.1)
    beat(client)
    rated_at = context.recent.unposted()[0][1].at
    context.close()
    assert session_row(committed)[1] == rated_at


def test_zero_posts_every_heartbeat_at_once(
    database_url: str, key_file, world: World, clock: Clock, committed: Engine
) -> None:  # type: ignore[no-untyped-def]
    app = create_app(portal_settings(database_url, key_file, heartbeat_write_delay_ms=0), clock=clock)
    client = app.test_client()
    assert app.extensions["hotspot_portal"].poster is None
    login(client, world.cards.numbers[0], world.cards.pins[0])
    for seconds in (10, 20):
        clock.advance(10)
        beat(client)
        assert session_row(committed)[:2] == (seconds, NOW + timedelta(seconds=seconds))
    app.extensions["hotspot_portal"].close()


def test_a_view_older_than_half_the_timeout_is_read_again_not_trusted(
    client: FlaskClient, world: World, clock: Clock, by_hand: PortalContext, committed: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A page beats every third of the timeout: when this process last saw the session longer ago than
    half of it, the heartbeat in between went to another process, so the kept view is stale."""
    online_with_beats(client, world, clock, 5)
    by_hand.post_rated_heartbeats()
    with committed.begin() as db:  # another portal process billed the guest's next heartbeat, at 15 s
        db.execute(text("UPDATE sessions SET seconds = 15, charged = 15, time_cost_num = time_cost_num + 600"))
    single_writes: list[int] = []
    original = sessions_db.apply_meter
    monkeypatch.setattr(sessions_db, "apply_meter", lambda *a, **k: single_writes.append(1) or original(*a, **k))
    clock.advance(20)  # 20 s since this process last saw it: more than half of the 30 s timeout
    beat(client)
    assert by_hand.post_rated_heartbeats() == 1
    assert single_writes == []  # rated on a fresh read, so its batched post went through
    assert session_row(committed)[:2] == (25, NOW + timedelta(seconds=25))


def test_guests_whose_heartbeats_alternate_between_two_processes_cost_a_few_statements_per_post(
    app: Flask, database_url: str, key_file, world: World, clock: Clock, by_hand: PortalContext, committed: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    """gunicorn's workers each listen (`reuse_port`) and a page opens a new connection per heartbeat, so a
    guest's heartbeats land on either process: most rated posts then fail their guard (the other process
    posted since). They are read again all together and posted in one more statement, not one by one."""
    other, other_context = second_process(database_url, key_file, clock, monkeypatch)
    guests = []
    for i, (number, pin) in enumerate(zip(world.cards.numbers, world.cards.pins, strict=True)):
        here, there = app.test_client(), other.test_client()
        for browser in (here, there):
            browser.environ_base["REMOTE_ADDR"] = f"10.0.0.{i + 2}"
        login(here, number, pin)
        there.set_cookie("hotspot_portal", here.get_cookie("hotspot_portal").value)
        guests.append((here, there))
    calls: list[str] = []
    for name in ("post_heartbeats", "session_views_by_tokens", "apply_meter"):
        original = getattr(sessions_db, name)
        monkeypatch.setattr(sessions_db, name, lambda *a, _f=original, _n=name, **k: calls.append(_n) or _f(*a, **k))
    for second in range(1, 7):  # every 5 s, each guest's heartbeat goes to the other process than the last
        clock.advance(5)
        for here, there in guests:
            assert beat(there if second % 2 else here).get_json()["open"]
        calls.clear()
        assert (other_context if second % 2 else by_hand).post_rated_heartbeats() == len(guests)
        # the first heartbeat in each process reads the session; after that, each process's views are a
        # heartbeat behind: all six posts fail their guard together, then one read and one post for all
        retried = ["post_heartbeats", "session_views_by_tokens", "post_heartbeats"]
        assert calls == (["post_heartbeats"] if second <= 2 else retried), f"at {5 * second} s"
    other_context.close()
    with committed.connect() as db:
        rows = db.execute(text("SELECT seconds, last_heartbeat_at FROM sessions")).all()
        assert rows == [(30, NOW + timedelta(seconds=30))] * len(guests)
        balances = db.execute(text("SELECT balance FROM accounts")).scalars().all()
        assert balances == [470] * len(guests)  # 30 s at 0.60 a minute, billed once
    with Session(committed) as db:
        assert_ledger_balanced(db)


def test_a_session_that_changes_under_every_write_is_given_up_and_the_next_heartbeat_bills_it_once(
    client: FlaskClient, world: World, clock: Clock, by_hand: PortalContext, committed: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    online_with_beats(client, world, clock, 10, 10)  # rated, on the view read at login + 10 s
    calls: list[str] = []
    original_post, original_read = sessions_db.post_heartbeats, sessions_db.session_views_by_tokens

    def post(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append("post")
        with committed.begin() as db:  # the NetFlow importer bills traffic just before every post
            db.execute(text("UPDATE sessions SET traffic_cost_num = traffic_cost_num + 1"))
        return original_post(*args, **kwargs)

    def read(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append("read")
        return original_read(*args, **kwargs)

    monkeypatch.setattr(sessions_db, "post_heartbeats", post)
    monkeypatch.setattr(sessions_db, "session_views_by_tokens", read)
    assert by_hand.post_rated_heartbeats() == 1
    assert calls == ["post", "read", "post", "read", "post"]  # three tries, then given up
    assert by_hand.recent.unposted() == [] and session_row(committed)[0] == 0 and time_debits(committed) == []
    monkeypatch.setattr(sessions_db, "post_heartbeats", original_post)
    clock.advance(10)
    assert beat(client).get_json()["balance_minor"] == 470  # read afresh: 30 s, each second billed once
    assert by_hand.post_rated_heartbeats() == 1
    assert session_row(committed)[:2] == (30, NOW + timedelta(seconds=30)) and time_debits(committed) == [-30]


@pytest.mark.parametrize("javascript", [True, False], ids=["heartbeat", "no-JS refresh"])
def test_a_top_up_through_the_other_process_shows_at_the_next_heartbeat_here(
    app: Flask, database_url: str, key_file, world: World, clock: Clock, by_hand: PortalContext,
    monkeypatch: pytest.MonkeyPatch, javascript: bool,
) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    """A browser's connections reach either gunicorn worker. After a top-up through one, a heartbeat to the
    other must not be answered from the view that one kept (the balance before the top-up): the browser's
    cookie says when the guest last moved money, and a view older than that is read again."""
    other, other_context = second_process(database_url, key_file, clock, monkeypatch)
    here, there = app.test_client(), other.test_client()
    login(here, world.cards.numbers[0], world.cards.pins[0])
    clock.advance(5)
    assert beat(here).get_json()["balance_minor"] == 495  # rated here, on the view kept at login
    there.set_cookie("hotspot_portal", here.get_cookie("hotspot_portal").value)
    clock.advance(3)
    form = {"card": world.cards.numbers[1], "pin": world.cards.pins[1], "csrf_token": csrf_of(there, "/status")}
    page = there.post("/topup", data=form, follow_redirects=True).get_data(as_text=True)
    assert '<p class="amount" data-field="balance">€9.92</p>' in page
    here.set_cookie("hotspot_portal", there.get_cookie("hotspot_portal").value)  # the browser's, after it
    clock.advance(4)
    if javascript:  # answered before Flask (heartbeat_shortcut)
        assert beat(here).get_json()["balance_minor"] == 988  # 12 s online, and the top-up
    else:  # Flask's status view
        assert "€9.88" in here.get("/status?refresh=1").get_data(as_text=True)
    assert by_hand.post_rated_heartbeats() == 1
    other_context.close()
