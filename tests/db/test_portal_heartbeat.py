"""The portal's heartbeat without the row lock: one read, one guarded write, and the locked way when it
does not apply (a session that changed meanwhile, or one already silent for too long)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta

import psycopg2.extensions
import pytest
from sqlalchemy.orm import Session

from portal.heartbeats import RecentViews, mark_sign_of_life_without_lock
from rlm_hotspot.core.heartbeat import CLOSED_PAGE_SLACK_S, PageState
from rlm_hotspot.db import sessions as sessions_db
from rlm_hotspot.pins import PinVault
from rlm_hotspot.services import sessions
from rlm_hotspot.services.portal import (
    HEARTBEAT_TIMEOUT_CAUSE,
    PortalHotspot,
    Signal,
    mark_page_state,
    mark_sign_of_life,
    portal_hotspot,
)
from rlm_hotspot.services.tariff_cache import TariffCache
from tests.conftest import NOW
from tests.db import factories
from tests.db.helpers import assert_ledger_balanced

POLICY = sessions.Policy(lockout_attempts=3, lockout_window_s=600, pending_session_ttl_s=120)


def logged_in(db: Session, vault: PinVault, tariffs: TariffCache) -> tuple[PortalHotspot, str]:
    """A 5.00 card on a standalone hotspot billing 0.60 per minute per second, heartbeat timeout 60 s."""
    factories.tariff(db, time_price=60, time_unit_seconds=60)
    factories.hotspot(db, mode="standalone", traffic_meter="netflow", heartbeat="on", heartbeat_timeout=60)
    batch = factories.batch(db, vault, hotspot="cafe")
    hotspot = portal_hotspot(db, "cafe")
    status = sessions.open_portal_session(
        db,
        vault,
        tariffs,
        POLICY,
        card_text=batch.numbers[0],
        pin=batch.pins[0],
        hotspot_id=hotspot.id,
        client_ip="10.77.0.2",
        client_mac=None,
        now=NOW,
    )
    return hotspot, status.token


@contextmanager
def counted_statements(db: Session) -> Iterator[list[str]]:
    """Every statement sent on `db`'s connection, counted at the driver (the hot paths bypass SQLAlchemy's
    result machinery and its events); the once-per-connection PREPAREs are left out."""
    statements: list[str] = []

    class Counting(psycopg2.extensions.cursor):
        def execute(self, query, vars=None):  # type: ignore[no-untyped-def]
            if not str(query).startswith("PREPARE "):
                statements.append(str(query))
            return super().execute(query, vars)

    driver = db.connection().connection.dbapi_connection
    driver.cursor_factory = Counting  # type: ignore[union-attr]
    try:
        yield statements
    finally:
        driver.cursor_factory = psycopg2.extensions.cursor  # type: ignore[union-attr]


def test_a_heartbeat_is_one_read_and_one_write_and_reports_what_a_fresh_read_shows(
    db: Session, vault: PinVault
) -> None:
    tariffs = TariffCache()
    hotspot, token = logged_in(db, vault, tariffs)
    later = NOW + timedelta(seconds=20)  # the tariff is still cached
    with counted_statements(db) as statements:
        view = mark_sign_of_life_without_lock(db, tariffs, hotspot, token, later, Signal.PAGE)
    assert [s.split("(")[0] for s in statements] == ["EXECUTE hs_session_view_by_token", "EXECUTE hs_apply_meter"]
    assert view is not None and view.cut_at == later + timedelta(seconds=60)
    assert (view.status.balance, view.status.online_seconds, view.status.seconds_remaining) == (480, 20, 480)
    assert view.status == sessions.session_status(db, tariffs, token, later)
    assert_ledger_balanced(db)


def test_the_next_heartbeat_billed_by_the_same_process_is_one_write(db: Session, vault: PinVault) -> None:
    tariffs, recent = TariffCache(), RecentViews()
    hotspot, token = logged_in(db, vault, tariffs)
    first = mark_sign_of_life_without_lock(
        db, tariffs, hotspot, token, NOW + timedelta(seconds=10), Signal.PAGE, recent
    )
    later = NOW + timedelta(seconds=25)  # the tariff is still cached
    with counted_statements(db) as statements:
        view = mark_sign_of_life_without_lock(db, tariffs, hotspot, token, later, Signal.PAGE, recent)
    assert [s.split("(")[0] for s in statements] == ["EXECUTE hs_apply_meter"]
    assert first is not None and view is not None
    assert (view.status.balance, view.status.online_seconds, view.cut_at) == (475, 25, later + timedelta(seconds=60))
    assert view.status == sessions.session_status(db, tariffs, token, later)
    assert_ledger_balanced(db)


def test_a_kept_view_the_session_moved_away_from_is_read_again_and_nothing_is_billed_twice(
    db: Session, vault: PinVault
) -> None:
    tariffs, recent = TariffCache(), RecentViews()
    hotspot, token = logged_in(db, vault, tariffs)
    mark_sign_of_life_without_lock(db, tariffs, hotspot, token, NOW + timedelta(seconds=10), Signal.PAGE, recent)
    sessions.post_heartbeat(db, tariffs, token, NOW + timedelta(seconds=15))  # another process's heartbeat
    later = NOW + timedelta(seconds=25)
    with counted_statements(db) as statements:
        view = mark_sign_of_life_without_lock(db, tariffs, hotspot, token, later, Signal.PAGE, recent)
    assert [s.split("(")[0] for s in statements] == [
        "EXECUTE hs_apply_meter",  # refused: the counters moved since the kept view
        "EXECUTE hs_session_view_by_token",
        "EXECUTE hs_apply_meter",
    ]
    assert view is not None and view.status == sessions.session_status(db, tariffs, token, later)
    assert view.status.balance == 475  # 25 s in all, each second billed once
    sessions.logout(db, tariffs, token, later)
    ended = mark_sign_of_life_without_lock(
        db, tariffs, hotspot, token, NOW + timedelta(seconds=28), Signal.PAGE, recent
    )
    assert ended is not None and not ended.status.open and ended.status.balance == 475
    assert_ledger_balanced(db)


def test_a_session_changed_between_read_and_write_is_not_billed_twice(db: Session, vault: PinVault) -> None:
    tariffs = TariffCache()
    _, token = logged_in(db, vault, tariffs)
    stale = sessions.session_view(db, token)
    sessions.post_heartbeat(db, tariffs, token, NOW + timedelta(seconds=20))  # another request got there first
    assert sessions.post_heartbeat_on(db, tariffs, stale, NOW + timedelta(seconds=30)) is None
    assert sessions.session_status(db, tariffs, token, NOW + timedelta(seconds=30)).balance == 480
    assert sessions.post_heartbeat(db, tariffs, token, NOW + timedelta(seconds=30)).balance == 470
    assert_ledger_balanced(db)


def test_a_page_polled_by_the_os_only_reports_when_the_hotspot_wants_the_page(db: Session, vault: PinVault) -> None:
    tariffs = TariffCache()
    hotspot, token = logged_in(db, vault, tariffs)
    view = mark_sign_of_life_without_lock(db, tariffs, hotspot, token, NOW + timedelta(seconds=30), Signal.CAPTIVE_API)
    assert view is not None and view.status.balance == 500 and view.cut_at == NOW + timedelta(seconds=60)


def test_a_session_silent_too_long_goes_the_locked_way_and_is_billed_until_the_portal_cuts_it(
    db: Session, vault: PinVault
) -> None:
    tariffs = TariffCache()
    hotspot, token = logged_in(db, vault, tariffs)
    much_later = NOW + timedelta(seconds=90)
    assert mark_sign_of_life_without_lock(db, tariffs, hotspot, token, much_later, Signal.PAGE) is None
    view = mark_sign_of_life(db, tariffs, hotspot, token, much_later, Signal.PAGE)
    # its gate was open until now (the portal closes it now): the 90 s are billed, not the 0 s heard of
    assert (view.status.open, view.status.balance, view.status.online_seconds, view.cut_at) == (False, 410, 90, None)
    assert view.status.terminate_cause == HEARTBEAT_TIMEOUT_CAUSE
    assert_ledger_balanced(db)


def test_a_hidden_page_keeps_its_session_for_the_hidden_grace_and_a_closed_one_ends_soon(
    db: Session, vault: PinVault
) -> None:
    tariffs = TariffCache()
    hotspot, token = logged_in(db, vault, tariffs)
    assert hotspot.hidden_grace == 600  # the default (sql/016)
    assert mark_page_state(db, token, PageState.HIDDEN, NOW)
    back = NOW + timedelta(seconds=300)  # frozen in the background, far past the 60 s timeout
    assert (
        mark_sign_of_life_without_lock(db, tariffs, hotspot, token, back, Signal.PAGE) is None
    )  # the locked way decides
    view = mark_sign_of_life(db, tariffs, hotspot, token, back, Signal.PAGE)
    assert (view.status.open, view.status.online_seconds, view.status.balance) == (True, 300, 200)
    assert mark_page_state(db, token, PageState.CLOSED, back)
    view = mark_sign_of_life(
        db, tariffs, hotspot, token, back + timedelta(seconds=CLOSED_PAGE_SLACK_S), Signal.CAPTIVE_API
    )
    assert view.status.open  # a reload's sign of life may still come
    cut = back + timedelta(seconds=CLOSED_PAGE_SLACK_S + 1)
    view = mark_sign_of_life(db, tariffs, hotspot, token, cut, Signal.CAPTIVE_API)
    assert (view.status.open, view.status.terminate_cause, view.status.balance) == (False, "Page-Closed", 189)
    assert_ledger_balanced(db)


def test_the_batched_heartbeat_write_refuses_a_write_that_moves_traffic(db: Session, vault: PinVault) -> None:
    """It writes time columns only: a traffic debit handed to it would otherwise be lost without a word."""
    tariffs = TariffCache()
    _, token = logged_in(db, vault, tariffs)
    view = sessions.session_view(db, token)
    later = NOW + timedelta(seconds=20)
    write = replace(sessions.rate_online_time(db, tariffs, view, later), traffic_debit=3, traffic_cost_num=3)
    with pytest.raises(ValueError, match="moves no traffic"):
        sessions_db.post_heartbeats(db, [sessions_db.HeartbeatPost(view, write, later)], later)
    assert sessions.session_view(db, token) == view
