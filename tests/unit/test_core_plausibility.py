"""No counter moves money it should not: bounds on what a NAS reports, and which session a packet is."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from rlm_hotspot.core.plausibility import (
    CLOCK_SLACK_S,
    MAX_BIGINT,
    Belonging,
    Counter,
    HoldReason,
    MatchedSession,
    PacketFacts,
    Quantity,
    advance_counter,
    belonging,
    bytes_bound,
    pick_session,
    seconds_bound,
)

GBIT = 1_000_000  # kbit/s


def test_time_is_bounded_by_the_wall_clock_and_a_jump_is_held_whole() -> None:
    after_one_second = advance_counter(Quantity.SECONDS, Counter(0), 0xFFFFFFFF, seconds_bound(1))
    assert after_one_second.counter == Counter(0, 0xFFFFFFFF)
    assert after_one_second.held is not None
    assert (after_one_second.held.amount, after_one_second.held.reason) == (0xFFFFFFFF, HoldReason.TIME_BEYOND_CLOCK)
    # the NAS's next honest counter is below its glitch: billed from zero, as it says
    honest = advance_counter(Quantity.SECONDS, after_one_second.counter, 300, seconds_bound(300))
    assert (honest.counter, honest.held) == (Counter(300, 0xFFFFFFFF), None)


def test_a_counter_that_counts_on_from_a_jump_is_billed_its_increments_only() -> None:
    jumped = advance_counter(Quantity.DOWNLOAD, Counter(5_000), 1000 << 32, bytes_bound(5_000, 60, GBIT))
    assert jumped.counter == Counter(5_000, 1000 << 32)
    assert jumped.held is not None and jumped.held.amount == (1000 << 32) - 5_000
    on = advance_counter(Quantity.DOWNLOAD, jumped.counter, (1000 << 32) + 7_000, bytes_bound(5_000, 60, GBIT))
    assert (on.counter, on.held) == (Counter(12_000, (1000 << 32) + 7_000), None)
    retransmit = advance_counter(Quantity.DOWNLOAD, on.counter, (1000 << 32) + 7_000, bytes_bound(12_000, 0, GBIT))
    assert (retransmit.counter, retransmit.held) == (on.counter, None)


def test_a_counter_beyond_bigint_is_held_as_out_of_range() -> None:
    advanced = advance_counter(Quantity.UPLOAD, Counter(10), 2**64 - 1, bytes_bound(10, 60, GBIT))
    assert advanced.held is not None
    assert (advanced.held.amount, advanced.held.reason) == (2**64 - 1 - 10, HoldReason.COUNTER_OUT_OF_RANGE)
    assert advanced.counter == Counter(10, MAX_BIGINT)


def test_the_line_rate_bounds_bytes_since_the_previous_counters() -> None:
    assert bytes_bound(0, 60, 8) == (60 + CLOCK_SLACK_S) * 1000  # 8 kbit/s = 1000 bytes a second
    assert bytes_bound(MAX_BIGINT - 1, 10**9, GBIT) == MAX_BIGINT
    assert bytes_bound(100, -5, 8) == 100 + CLOCK_SLACK_S * 1000  # a reordered packet: no time has passed


counters = st.integers(min_value=0, max_value=2**64 - 1)


@given(billed=counters.filter(lambda n: n <= MAX_BIGINT), reports=st.lists(counters, max_size=12), bound_gap=counters)
def test_billed_never_decreases_never_passes_the_bound_and_all_excess_is_held(
    billed: int, reports: list[int], bound_gap: int
) -> None:
    counter = Counter(billed)
    for reported in reports:
        bound = min(MAX_BIGINT, counter.billed + bound_gap)
        advanced = advance_counter(Quantity.DOWNLOAD, counter, reported, bound)
        assert counter.billed <= advanced.counter.billed <= max(bound, counter.billed)
        assert advanced.counter.billed <= MAX_BIGINT and advanced.counter.nas_position <= MAX_BIGINT
        if advanced.held is not None:
            assert advanced.held.amount > 0 and advanced.counter.billed == counter.billed
        counter = advanced.counter


@given(truth=st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=20))
def test_an_honest_nas_within_the_bound_is_billed_exactly_what_it_reports(truth: list[int]) -> None:
    counter, total = Counter(0), 0
    for step in truth:
        total += step
        counter = advance_counter(Quantity.UPLOAD, counter, total, counter.billed + step).counter
    assert counter == Counter(total)


def matched(**overrides: object) -> MatchedSession:
    facts: dict[str, object] = {
        "closed": False,
        "same_user": True,
        "started_at": 1_000,
        "counters_at": 1_300,
        "seconds": 300,
        "input_octets": 10,
        "output_octets": 20,
    }
    return MatchedSession(**{**facts, **overrides})  # type: ignore[arg-type]


def packet(at: int, session_time: int | None, *, start: bool = False, octets: int = 0) -> PacketFacts:
    return PacketFacts(start=start, at=at, session_time=session_time, input_octets=octets, output_octets=octets)


def test_another_cards_packet_is_another_session() -> None:
    assert belonging(matched(same_user=False), packet(1_600, 600)) is Belonging.OTHER


def test_counters_that_began_after_the_last_packet_are_another_session() -> None:
    assert belonging(matched(), packet(1_600, 600)) is Belonging.SAME  # began at 1_000
    assert belonging(matched(), packet(1_600, 200)) is Belonging.OTHER  # began at 1_400: a reboot, the id again
    assert belonging(matched(closed=True), packet(5_000, 0, start=True)) is Belonging.OTHER
    # delayed without saying so: it began before the last packet, so it is the session's own
    assert belonging(matched(), packet(1_600, 450)) is Belonging.SAME


def test_a_closed_session_takes_only_its_own_late_packets() -> None:
    closed = matched(closed=True)
    assert belonging(closed, packet(1_400, 300, octets=5)) is Belonging.DUPLICATE
    assert belonging(closed, packet(1_400, 300, start=True)) is Belonging.DUPLICATE
    assert belonging(closed, packet(1_400, 400, octets=5)) is Belonging.SAME  # its Stop after a stale close
    assert belonging(closed, packet(1_400, None, octets=50)) is Belonging.OTHER  # no Acct-Session-Time: no proof


def test_a_packet_goes_to_the_session_its_own_start_points_at() -> None:
    newest_first = [(2_000, True), (1_000, False)]  # a session the NAS opened with the same id after a reboot
    assert pick_session(newest_first, sent=2_300, began=2_000) == 0
    assert pick_session(newest_first, sent=2_300, began=1_000) == 1  # a late packet of the earlier one
    assert pick_session(newest_first, sent=1_500, began=None) == 1  # sent before the newer one began
    assert pick_session(newest_first, sent=2_300, began=-(2**32)) == 0  # absurd: the live one, to be bounded
    assert pick_session(newest_first, sent=500, began=400) is None  # before every one of them
    assert pick_session([], sent=500, began=400) is None
