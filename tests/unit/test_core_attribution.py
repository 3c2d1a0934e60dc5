"""Who pays for an IP's bin: started before the bin ends, stopped no earlier than the grace window, latest wins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from rlm_hotspot.core.attribution import BinWindow, Claim, holder, latest_first, lone_holder

BIN = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
WINDOW = BinWindow.of(BIN, MINUTE, 3 * MINUTE)


def claim(session_id: int, started: timedelta, stopped: timedelta | None = None) -> Claim:
    """A claim started (and stopped) at offsets from the bin start."""
    return Claim(BIN + started, None if stopped is None else BIN + stopped, session_id)


def test_a_session_holds_the_bin_from_its_start_until_the_grace_window_after_its_stop() -> None:
    assert holder([claim(1, -60 * MINUTE)], WINDOW) == claim(1, -60 * MINUTE)
    assert holder([claim(1, 59 * MINUTE / 60)], WINDOW) is not None  # started inside the bin
    assert holder([claim(1, MINUTE)], WINDOW) is None  # starts when the bin ends
    assert holder([claim(1, -60 * MINUTE, -3 * MINUTE)], WINDOW) is not None  # stopped just within the grace
    assert holder([claim(1, -60 * MINUTE, -3 * MINUTE - timedelta(seconds=1))], WINDOW) is None
    assert holder([], WINDOW) is None


def test_the_latest_start_wins_and_a_tie_goes_to_the_newest_session() -> None:
    previous, current = claim(1, -60 * MINUTE, -MINUTE), claim(2, timedelta(seconds=30))
    assert holder(latest_first([previous, current]), WINDOW) == current
    twins = [claim(7, -MINUTE), claim(9, -MINUTE), claim(8, -MINUTE)]
    assert holder(latest_first(twins), WINDOW) == claim(9, -MINUTE)


offsets = st.integers(min_value=-600, max_value=600).map(lambda s: timedelta(seconds=s))


@given(st.lists(st.tuples(offsets, st.none() | offsets), max_size=6))
def test_the_holder_is_the_latest_started_of_the_sessions_overlapping_the_bin(spans: list) -> None:  # type: ignore[type-arg]
    claims = [claim(number, started, stopped) for number, (started, stopped) in enumerate(spans)]
    overlapping = [
        c for c in claims if c.started_at < BIN + MINUTE and (c.stopped_at is None or c.stopped_at >= BIN - 3 * MINUTE)
    ]
    expected = max(overlapping, key=lambda c: (c.started_at, c.session_id), default=None)
    assert holder(latest_first(claims), WINDOW) == expected


@given(st.lists(st.tuples(offsets, st.none() | offsets), max_size=3), st.lists(offsets, min_size=1, max_size=4))
def test_a_lone_holder_is_the_holder_of_every_bin(spans: list, bin_offsets: list) -> None:  # type: ignore[type-arg]
    claims = latest_first(claim(number, started, stopped) for number, (started, stopped) in enumerate(spans))
    windows = [BinWindow.of(BIN + offset, MINUTE, 3 * MINUTE) for offset in bin_offsets]
    lone = lone_holder(claims, BinWindow.throughout(windows))
    if lone is not None:
        assert all(holder(claims, window) == lone for window in windows)
    if len(claims) == 1 and all(holder(claims, window) for window in windows):
        assert lone == claims[0]
