"""Rating: exact figures, DST days, and the properties billing relies on (additive, monotone, bounded)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from rlm_hotspot.core.tariff import (
    Band,
    BytesAt,
    Meter,
    Rated,
    Tariff,
    TrafficDirection,
    Usage,
    advance_time,
    band_at,
    billable_bytes,
    bytes_affordable,
    charged,
    daily_cycle,
    next_band_change,
    rate,
    seconds_affordable,
)


def rate_bytes(t: Tariff, tz: tzinfo, at: datetime, meter: Meter, billable: int) -> Rated:
    """`meter` moved on by `billable` bytes used at `at`, through `rate` (the bytes on the side it bills)."""
    part = BytesAt(at, 0, billable) if t.traffic_direction is TrafficDirection.UPLOAD else BytesAt(at, billable, 0)
    return rate(t, tz, meter, Usage(traffic=(part,)))


def with_bytes(t: Tariff, tz: tzinfo, at: datetime, meter: Meter, billable: int) -> Meter:
    return rate_bytes(t, tz, at, meter, billable).meter


MOSCOW = ZoneInfo("Europe/Moscow")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")  # 30-minute DST shift: a harder case
KATHMANDU = ZoneInfo("Asia/Kathmandu")  # +05:45
SANTIAGO = ZoneInfo("America/Santiago")  # its clocks change at local midnight
ZONES: list[tzinfo] = [UTC, MOSCOW, BERLIN, NEW_YORK, LORD_HOWE, KATHMANDU, SANTIAGO, timezone(timedelta(hours=-3))]

PER_HOUR = 3600
MB = 10**6


def tariff(
    time_price: int = 0,
    *,
    unit: int = PER_HOUR,
    increment: int = 60,
    traffic_price: int = 0,
    traffic_unit: int = MB,
    direction: TrafficDirection = TrafficDirection.DOWNLOAD,
    bands: tuple[Band, ...] = (),
) -> Tariff:
    return Tariff(time_price, unit, increment, traffic_price, traffic_unit, direction, bands)


# --- independent brute-force reference: one increment at a time, band by linear search -------------


def reference_band(t: Tariff, tz: tzinfo, at: datetime) -> tuple[int, int]:
    local = at.astimezone(tz)
    minute = local.hour * 60 + local.minute
    if not t.bands:
        return (t.time_price, t.traffic_price)
    in_force = t.bands[-1]  # yesterday's last band runs on until today's first one starts
    for band in t.bands:
        if band.start_minute <= minute:
            in_force = band
    return (in_force.time_price, in_force.traffic_price)


def reference_time_num(t: Tariff, tz: tzinfo, start: datetime, seconds: int) -> int:
    inc = t.time_increment_seconds
    increments = -(-seconds // inc)
    return sum(inc * reference_band(t, tz, start + timedelta(seconds=k * inc))[0] for k in range(increments))


# --- strategies ----------------------------------------------------------------------------------------

prices = st.one_of(st.integers(min_value=0, max_value=3), st.integers(min_value=0, max_value=5000))


@st.composite
def bands(draw: st.DrawFn) -> tuple[Band, ...]:
    starts = sorted(draw(st.sets(st.integers(min_value=0, max_value=1439), max_size=4)))
    return tuple(Band(s, draw(prices), draw(prices)) for s in starts)


@st.composite
def tariffs(draw: st.DrawFn, increments: st.SearchStrategy[int] | None = None) -> Tariff:
    return Tariff(
        time_price=draw(prices),
        time_unit_seconds=draw(st.sampled_from([1, 60, 3600, 7])),
        time_increment_seconds=draw(
            increments if increments is not None else st.sampled_from([1, 10, 60, 300, 3600, 7])
        ),
        traffic_price=draw(prices),
        traffic_unit_bytes=draw(st.sampled_from([1, MB, 2**20, 1000])),
        traffic_direction=draw(st.sampled_from(list(TrafficDirection))),
        bands=draw(bands()),
    )


# Around DST transitions (Europe 2026-03-29 / 10-25, US 2026-03-08 / 11-01, Lord Howe 2026-04-05 / 10-04,
# Santiago 2026-04-05 / 09-06 at local midnight) and an ordinary day.
ANCHORS = [
    datetime(2026, 4, 4, 12, tzinfo=UTC),
    datetime(2026, 9, 5, 12, tzinfo=UTC),
    datetime(2026, 3, 28, 12, tzinfo=UTC),
    datetime(2026, 10, 24, 12, tzinfo=UTC),
    datetime(2026, 3, 7, 18, tzinfo=UTC),
    datetime(2026, 10, 31, 18, tzinfo=UTC),
    datetime(2026, 4, 4, 6, tzinfo=UTC),
    datetime(2026, 10, 3, 6, tzinfo=UTC),
    datetime(2026, 6, 15, 0, tzinfo=UTC),
]


@st.composite
def instants(draw: st.DrawFn) -> datetime:
    anchor = draw(st.sampled_from(ANCHORS))
    seconds = draw(st.integers(min_value=0, max_value=2 * 86400))
    micros = draw(st.sampled_from([0, 0, 0, 1, 999_999, 250_000]))
    return anchor + timedelta(seconds=seconds, microseconds=micros)


zones = st.sampled_from(ZONES)

# --- exact figures --------------------------------------------------------------------------------------

NIGHT_TARIFF = tariff(120, increment=60, bands=(Band(0, 60, 0), Band(360, 120, 0)))  # 1.20/h, 0.60/h 00-06


def test_band_boundary_2330_to_0030_moscow() -> None:
    start = datetime(2026, 5, 1, 20, 30, tzinfo=UTC)  # 23:30 MSK
    meter = advance_time(NIGHT_TARIFF, MOSCOW, start, Meter(), 3600)
    # 30 min at 120/h = 60, 30 min at 60/h = 30
    assert meter == Meter(seconds=3600, time_cost_num=30 * 60 * 120 + 30 * 60 * 60, traffic_cost_num=0)
    assert charged(meter, NIGHT_TARIFF) == 90
    assert meter.charged(NIGHT_TARIFF) == 90


def test_increment_straddling_a_boundary_is_charged_at_its_start_band() -> None:
    per_minute = tariff(2, unit=60, increment=60, bands=(Band(0, 1, 0), Band(360, 2, 0)))
    start = datetime(2026, 5, 1, 20, 59, 30, tzinfo=UTC)  # 23:59:30 MSK
    meter = advance_time(per_minute, MOSCOW, start, Meter(), 150)  # 3 started minutes
    assert charged(meter, per_minute) == 2 + 1 + 1
    per_second = tariff(120, unit=3600, increment=1, bands=(Band(0, 60, 0), Band(360, 120, 0)))
    meter = advance_time(per_second, MOSCOW, start, Meter(), 60)
    assert meter.time_cost_num == 30 * 120 + 30 * 60
    assert charged(meter, per_second) == 2  # 1.5 rounded up


def test_started_increment_is_charged_in_full_and_rounding_is_cumulative() -> None:
    t = tariff(1, unit=60, increment=60)  # 0.01 per minute, per started minute
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert charged(advance_time(t, UTC, start, Meter(), 1), t) == 1
    assert charged(advance_time(t, UTC, start, Meter(), 60), t) == 1
    assert charged(advance_time(t, UTC, start, Meter(), 61), t) == 2
    # 1.00/h per second: 36 s = 1 cent exactly; 37 s = 1.0277 cents -> 2 charged, but only at cumulative level
    per_second = tariff(100, unit=3600, increment=1)
    m = Meter()
    total = 0
    for s in range(1, 3601):
        rated = rate(per_second, UTC, m, Usage(start, s))
        total += rated.debited
        m = rated.meter
    assert total == charged(m, per_second) == 100


def test_berlin_band_inside_the_skipped_hour_starts_at_the_transition() -> None:
    # 2026-03-29: 02:00 CET jumps to 03:00 CEST at 01:00 UTC; a band starting 02:30 begins right then.
    t = tariff(60, bands=(Band(0, 60, 0), Band(150, 600, 0)))
    start = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)  # 01:00 CET
    assert next_band_change(t, BERLIN, start) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert charged(advance_time(t, BERLIN, start, Meter(), 7200), t) == 60 + 600


def test_berlin_repeated_hour_is_rated_by_the_wall_clock_both_times() -> None:
    # 2026-10-25: 03:00 CEST falls back to 02:00 CET at 01:00 UTC; 02:30-04:00 local is expensive.
    t = tariff(60, bands=(Band(150, 600, 0), Band(240, 60, 0)))
    start = datetime(2026, 10, 25, 0, 0, tzinfo=UTC)  # 02:00 CEST
    meter = advance_time(t, BERLIN, start, Meter(), 3 * 3600)
    # 02:00-02:30 CEST cheap, 02:30-03:00 CEST dear, 02:00-02:30 CET cheap, 02:30-04:00 CET dear
    assert charged(meter, t) == 30 + 300 + 30 + 900


def test_new_york_fall_back_night_lasts_seven_hours() -> None:
    t = tariff(120, bands=(Band(0, 30, 0), Band(360, 120, 0)))
    start = datetime(2026, 11, 1, 4, 0, tzinfo=UTC)  # 00:00 EDT
    meter = advance_time(t, NEW_YORK, start, Meter(), 8 * 3600)  # until 07:00 EST
    assert charged(meter, t) == 7 * 30 + 1 * 120


def test_new_york_spring_forward_night_lasts_five_hours() -> None:
    t = tariff(120, bands=(Band(0, 30, 0), Band(360, 120, 0)))
    start = datetime(2026, 3, 8, 5, 0, tzinfo=UTC)  # 00:00 EST
    meter = advance_time(t, NEW_YORK, start, Meter(), 6 * 3600)  # until 07:00 EDT
    assert charged(meter, t) == 5 * 30 + 1 * 120


# The README's tariff: 1.20/h by day, 0.60/h from 22:00 until 07:00 the next morning.
NIGHT, DAY = Band(22 * 60, 60, 1), Band(7 * 60, 120, 2)
README_TARIFF = tariff(120, traffic_price=2, bands=(DAY, NIGHT))


def test_a_session_across_midnight_is_priced_at_the_night_band() -> None:
    start = datetime(2026, 5, 1, 20, 30, tzinfo=UTC)  # 23:30 MSK
    meter = advance_time(README_TARIFF, MOSCOW, start, Meter(), 2 * 3600)  # until 01:30 MSK
    assert charged(meter, README_TARIFF) == 120  # two hours at 0.60
    assert band_at(README_TARIFF, MOSCOW, datetime(2026, 5, 1, 21, 0, tzinfo=UTC)) == NIGHT  # 00:00 MSK
    assert band_at(README_TARIFF, MOSCOW, datetime(2026, 5, 2, 3, 59, tzinfo=UTC)) == NIGHT  # 06:59 MSK
    assert band_at(README_TARIFF, MOSCOW, datetime(2026, 5, 2, 4, 0, tzinfo=UTC)) == DAY  # 07:00 MSK
    night_traffic = with_bytes(README_TARIFF, MOSCOW, datetime(2026, 5, 1, 23, 0, tzinfo=UTC), Meter(), MB)
    assert charged(night_traffic, README_TARIFF) == 1  # 02:00 MSK: the night traffic price
    # 1.20 from 23:30 MSK buys two hours of night (not 30 min of night and 30 min at the day price)
    assert seconds_affordable(README_TARIFF, MOSCOW, start, Meter(), 120, 10**6) == 2 * 3600
    # from 23:30 MSK, 5.00 buys 7.5 h of night (4.50) and 25 min of day (0.50)
    assert seconds_affordable(README_TARIFF, MOSCOW, start, Meter(), 500, 10**6) == (450 + 25) * 60


def test_the_night_band_spans_the_dst_nights() -> None:
    # Berlin 2026-03-29: 22:00 CET (21:00 UTC) to 07:00 CEST (05:00 UTC) is 8 h of night
    spring = advance_time(README_TARIFF, BERLIN, datetime(2026, 3, 28, 21, tzinfo=UTC), Meter(), 9 * 3600)
    assert charged(spring, README_TARIFF) == 8 * 60 + 120
    # Berlin 2026-10-25: 22:00 CEST (20:00 UTC) to 07:00 CET (06:00 UTC) is 10 h of night
    autumn = advance_time(README_TARIFF, BERLIN, datetime(2026, 10, 24, 20, tzinfo=UTC), Meter(), 11 * 3600)
    assert charged(autumn, README_TARIFF) == 10 * 60 + 120
    # Santiago 2026-09-06: midnight jumps to 01:00; 22:00 (01:00 UTC) to 07:00 (10:00 UTC) is 8 h of night
    skipped = advance_time(README_TARIFF, SANTIAGO, datetime(2026, 9, 6, 1, tzinfo=UTC), Meter(), 9 * 3600)
    assert charged(skipped, README_TARIFF) == 8 * 60 + 120
    # Santiago 2026-04-05: midnight falls back to 23:00; 22:00 (01:00 UTC) to 07:00 (11:00 UTC) is 10 h
    repeated = advance_time(README_TARIFF, SANTIAGO, datetime(2026, 4, 5, 1, tzinfo=UTC), Meter(), 11 * 3600)
    assert charged(repeated, README_TARIFF) == 10 * 60 + 120


def test_one_band_alone_is_in_force_all_day() -> None:
    only = Band(22 * 60, 60, 3)
    t = tariff(120, traffic_price=9, bands=(only,))
    start = datetime(2026, 5, 1, 0, 0, tzinfo=UTC)
    assert {band_at(t, MOSCOW, start + timedelta(minutes=m)) for m in range(0, 2 * 1440, 7)} == {only}
    assert charged(advance_time(t, MOSCOW, start, Meter(), 86400), t) == 24 * 60
    assert bytes_affordable(t, MOSCOW, start, Meter(), 3) == MB
    assert daily_cycle(t) == ((1320, 1320, only),)


def test_daily_cycle_reads_the_day_from_midnight() -> None:
    assert daily_cycle(README_TARIFF) == ((1320, 420, NIGHT), (420, 1320, DAY))
    assert daily_cycle(NIGHT_TARIFF) == ((0, 360, NIGHT_TARIFF.bands[0]), (360, 0, NIGHT_TARIFF.bands[1]))
    assert daily_cycle(tariff(120, traffic_price=5)) == ((0, 0, Band(0, 120, 5)),)


def test_traffic_is_priced_at_the_band_in_force_and_by_direction() -> None:
    t = tariff(traffic_price=10, direction=TrafficDirection.TOTAL, bands=(Band(0, 0, 5), Band(360, 0, 10)))
    night = datetime(2026, 5, 1, 22, 0, tzinfo=UTC)  # 01:00 MSK
    day = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)  # 12:00 MSK
    assert billable_bytes(t, 3 * MB, 1 * MB) == 4 * MB
    m = with_bytes(t, MOSCOW, night, Meter(), 4 * MB)
    assert charged(m, t) == 20
    m = with_bytes(t, MOSCOW, day, m, 1)  # one byte more: rounds up to one cent
    assert charged(m, t) == 21
    assert m.seconds == 0 and m.time_cost_num == 0
    down = tariff(traffic_price=1, direction=TrafficDirection.DOWNLOAD)
    up = tariff(traffic_price=1, direction=TrafficDirection.UPLOAD)
    assert billable_bytes(down, 7, 3) == 7
    assert billable_bytes(up, 7, 3) == 3


def test_long_session_is_rated_arithmetically() -> None:
    bands = (Band(0, 30, 0), Band(360, 120, 0), Band(1200, 90, 0))
    per_second = tariff(120, increment=1, bands=bands)
    start = datetime(2026, 10, 20, 3, 17, 5, tzinfo=UTC)  # 11.6 days, across the Berlin fall-back
    meter = advance_time(per_second, BERLIN, start, Meter(), 1_000_000)  # its speed: bench/pure_speed.py
    stepped = Meter()
    for seconds in range(0, 1_000_001, 9_973):
        stepped = advance_time(per_second, BERLIN, start, stepped, seconds)
    assert advance_time(per_second, BERLIN, start, stepped, 1_000_000) == meter
    # the same session with 10-second increments, checked against the per-increment reference
    per_ten = tariff(120, increment=10, bands=bands)
    ten = advance_time(per_ten, BERLIN, start, Meter(), 1_000_000)
    assert ten.time_cost_num == reference_time_num(per_ten, BERLIN, start, 1_000_000)


def test_free_time_and_free_traffic() -> None:
    t = tariff(0, traffic_price=0)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert charged(advance_time(t, UTC, start, Meter(), 10**9), t) == 0
    assert seconds_affordable(t, UTC, start, Meter(), 0, 86400) == 86400
    assert bytes_affordable(t, UTC, start, Meter(), 100) is None


def test_seconds_affordable_exact_figures() -> None:
    t = tariff(60, unit=3600, increment=60)  # 0.01 per minute
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert seconds_affordable(t, UTC, start, Meter(), 100, 10**6) == 100 * 60
    assert seconds_affordable(t, UTC, start, Meter(), 100, 3000) == 3000
    used = advance_time(t, UTC, start, Meter(), 90)  # two minutes started, 30 s of them left
    assert seconds_affordable(t, UTC, start, used, 0, 10**6) == 30
    assert seconds_affordable(t, UTC, start, used, 1, 10**6) == 90
    assert seconds_affordable(t, UTC, start, used, -1, 10**6) == 0
    per_second = tariff(1, unit=1, increment=1)  # one minor unit a second: the budget is hit exactly
    assert seconds_affordable(per_second, UTC, start, Meter(), 10, 10**6) == 10
    assert seconds_affordable(per_second, UTC, start, Meter(), 0, 10**6) == 0
    # 1.20 from 23:30 MSK: 30 min of day (0.60) and then 60 min of night at 0.60/h
    night = tariff(120, bands=(Band(0, 60, 0), Band(360, 120, 0)))
    late = datetime(2026, 5, 1, 20, 30, tzinfo=UTC)  # 23:30 MSK
    assert seconds_affordable(night, MOSCOW, late, Meter(), 120, 10**6) == 30 * 60 + 60 * 60


def test_bytes_affordable_exact_figures() -> None:
    t = tariff(traffic_price=50, traffic_unit=MB)  # 0.50 per MB
    at = datetime(2026, 1, 1, tzinfo=UTC)
    assert bytes_affordable(t, UTC, at, Meter(), 100) == 2 * MB
    assert bytes_affordable(t, UTC, at, Meter(), -5) == 0
    per_byte = tariff(traffic_price=1, traffic_unit=1)
    assert bytes_affordable(per_byte, UTC, at, Meter(), 10) == 10
    assert bytes_affordable(per_byte, UTC, at, Meter(), 0) == 0
    used = with_bytes(t, UTC, at, Meter(), 1)  # charged 1 cent, paid for 20000 bytes
    assert bytes_affordable(t, UTC, at, used, 0) == 20_000 - 1


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (dict(time_price=-1), "time_price"),
        (dict(time_unit_seconds=0), "time_unit_seconds"),
        (dict(time_increment_seconds=0), "time_increment_seconds"),
        (dict(traffic_unit_bytes=0), "traffic_unit_bytes"),
        (dict(time_price=1.5), "integer"),
        (dict(bands=(Band(60, 1, 1), Band(60, 2, 2))), "sorted"),
        (dict(bands=(Band(120, 1, 1), Band(60, 2, 2))), "sorted"),
        (dict(bands=(Band(1440, 1, 1),)), "0..1439"),
        (dict(bands=(Band(-1, 1, 1),)), "start_minute"),
        (dict(bands=(Band(10, -1, 1),)), "time_price"),
        (dict(bands=(Band(10, 1, -1),)), "traffic_price"),
    ],
)
def test_tariff_validation(bad: dict[str, object], message: str) -> None:
    fields: dict[str, object] = dict(
        time_price=1,
        time_unit_seconds=60,
        time_increment_seconds=1,
        traffic_price=1,
        traffic_unit_bytes=MB,
        traffic_direction=TrafficDirection.TOTAL,
    )
    fields.update(bad)
    with pytest.raises(ValueError, match=message):
        Tariff(**fields)  # type: ignore[arg-type]


def test_naive_datetimes_are_refused() -> None:
    naive = datetime(2026, 1, 1)
    with pytest.raises(ValueError, match="timezone-aware"):
        advance_time(NIGHT_TARIFF, MOSCOW, naive, Meter(), 10)
    with pytest.raises(ValueError, match="timezone-aware"):
        with_bytes(NIGHT_TARIFF, MOSCOW, naive, Meter(), 10)
    with pytest.raises(ValueError, match="timezone-aware"):
        seconds_affordable(NIGHT_TARIFF, MOSCOW, naive, Meter(), 10, 10)
    with pytest.raises(ValueError, match="timezone-aware"):
        bytes_affordable(NIGHT_TARIFF, MOSCOW, naive, Meter(), 10)


def test_negative_quantities_are_refused() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError):
        advance_time(NIGHT_TARIFF, UTC, start, Meter(), -1)
    with pytest.raises(ValueError):
        with_bytes(NIGHT_TARIFF, UTC, start, Meter(), -1)
    with pytest.raises(ValueError):
        billable_bytes(NIGHT_TARIFF, -1, 0)
    with pytest.raises(ValueError):
        Meter(seconds=-1)


# --- properties -------------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    t=tariffs(increments=st.sampled_from([60, 300, 3600, 7, 600])),
    tz=zones,
    start=instants(),
    seconds=st.integers(min_value=0, max_value=3 * 86400),
)
def test_matches_the_per_increment_reference(t: Tariff, tz: tzinfo, start: datetime, seconds: int) -> None:
    assume(-(-seconds // t.time_increment_seconds) <= 5000)
    meter = advance_time(t, tz, start, Meter(), seconds)
    assert meter.seconds == seconds
    assert meter.time_cost_num == reference_time_num(t, tz, start, seconds)
    assert type(meter.time_cost_num) is int and type(charged(meter, t)) is int


@settings(max_examples=100, deadline=None)
@given(
    t=tariffs(),
    tz=zones,
    start=instants(),
    seconds=st.integers(min_value=0, max_value=3 * 86400),
    base=st.tuples(prices, prices),
    balance=st.integers(0, 20_000),
)
def test_with_bands_the_base_prices_are_never_in_force(
    t: Tariff, tz: tzinfo, start: datetime, seconds: int, base: tuple[int, int], balance: int
) -> None:
    """Every price lookup wraps round the clock: changing a banded tariff's base prices changes nothing."""
    assume(t.bands)
    other = Tariff(
        base[0],
        t.time_unit_seconds,
        t.time_increment_seconds,
        base[1],
        t.traffic_unit_bytes,
        t.traffic_direction,
        t.bands,
    )
    at = start + timedelta(seconds=seconds)
    assert band_at(other, tz, at) == band_at(t, tz, at)
    assert advance_time(other, tz, start, Meter(), seconds) == advance_time(t, tz, start, Meter(), seconds)
    assert with_bytes(other, tz, at, Meter(), MB) == with_bytes(t, tz, at, Meter(), MB)
    assert seconds_affordable(other, tz, start, Meter(), balance, 2 * 86400) == seconds_affordable(
        t, tz, start, Meter(), balance, 2 * 86400
    )
    assert bytes_affordable(other, tz, at, Meter(), balance) == bytes_affordable(t, tz, at, Meter(), balance)
    assert other.time_is_free == t.time_is_free


@settings(max_examples=100, deadline=None)
@given(t=tariffs())
def test_daily_cycle_covers_the_day_once_in_band_order(t: Tariff) -> None:
    periods = daily_cycle(t)
    assert sum((end - start) % 1440 or 1440 for start, end, _ in periods) == 1440
    assert [band for _, _, band in periods] == [_band_at_minute(t, start) for start, _, _ in periods]
    assert periods[0][2] == _band_at_minute(t, 0)  # the day is read from midnight
    assert all(end == following[0] for (_, end, _), following in zip(periods, periods[1:] + periods[:1], strict=True))


def _band_at_minute(t: Tariff, minute: int) -> Band:
    return band_at(t, UTC, datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minute))


@settings(max_examples=100, deadline=None)
@given(t=tariffs(), tz=zones, at=instants())
def test_next_band_change_is_strictly_later_and_the_band_holds_until_then(t: Tariff, tz: tzinfo, at: datetime) -> None:
    change = next_band_change(t, tz, at)
    assert change > at
    assert change - at <= timedelta(days=1, hours=1)
    expected = reference_band(t, tz, at)
    probe = at
    while probe < change:
        assert reference_band(t, tz, probe) == expected
        probe += timedelta(minutes=1)
    assert reference_band(t, tz, change - timedelta(microseconds=1)) == expected
    assert (band_at(t, tz, at).time_price, band_at(t, tz, at).traffic_price) == expected


@settings(max_examples=150, deadline=None)
@given(
    t=tariffs(),
    tz=zones,
    start=instants(),
    checkpoints=st.lists(st.integers(min_value=0, max_value=4 * 86400), max_size=8),
    final=st.integers(min_value=0, max_value=4 * 86400),
    traffic=st.lists(st.integers(min_value=0, max_value=10**10), max_size=4),
)
def test_additive_over_any_split(
    t: Tariff, tz: tzinfo, start: datetime, checkpoints: list[int], final: int, traffic: list[int]
) -> None:
    path = sorted([*checkpoints, final])
    final = path[-1]
    one_step = advance_time(t, tz, start, Meter(), final)
    meter = Meter()
    debited = 0
    for seconds in path:
        rated = rate(t, tz, meter, Usage(start, seconds))
        assert rated.debited >= 0
        debited += rated.debited
        meter = rated.meter
    assert meter == one_step
    assert debited == charged(one_step, t)
    # traffic batches: order of arrival and splitting do not change the cumulative charge
    at = start + timedelta(seconds=final)
    whole = with_bytes(t, tz, at, one_step, sum(traffic))
    for amount in traffic:
        rated = rate_bytes(t, tz, at, meter, amount)
        debited += rated.debited
        meter = rated.meter
    assert meter == whole
    assert debited == charged(whole, t)


@settings(max_examples=100, deadline=None)
@given(t=tariffs(), tz=zones, start=instants(), a=st.integers(0, 3 * 86400), b=st.integers(0, 3 * 86400))
def test_monotone_and_never_backwards(t: Tariff, tz: tzinfo, start: datetime, a: int, b: int) -> None:
    low, high = sorted((a, b))
    m_low = advance_time(t, tz, start, Meter(), low)
    m_high = advance_time(t, tz, start, Meter(), high)
    assert charged(m_low, t) <= charged(m_high, t)
    assert advance_time(t, tz, start, m_high, low) == m_high  # a stale counter changes nothing
    assert charged(with_bytes(t, tz, start, m_low, a), t) <= charged(with_bytes(t, tz, start, m_low, a + b), t)


@settings(max_examples=150, deadline=None)
@given(
    price=prices,
    unit=st.sampled_from([1, 60, 3600, 7]),
    increment=st.sampled_from([1, 10, 60, 300, 3600, 7]),
    seconds=st.integers(0, 10**7),
    tz=zones,
    start=instants(),
)
def test_single_price_overcharge_is_bounded_and_never_under(
    price: int, unit: int, increment: int, seconds: int, tz: tzinfo, start: datetime
) -> None:
    t = tariff(price, unit=unit, increment=increment)
    total = charged(advance_time(t, tz, start, Meter(), seconds), t)
    exact_num = seconds * price  # exact per-second price, times unit
    assert total * unit >= exact_num
    # total - exact < one increment's price + 1 minor unit
    assert total * unit - exact_num < increment * price + unit


@settings(max_examples=60, deadline=None)
@given(
    t=tariffs(increments=st.sampled_from([1, 10, 60])),
    tz=st.sampled_from([UTC, MOSCOW, BERLIN, NEW_YORK]),
    start=instants(),
    seconds=st.integers(0, 4 * 3600),
)
def test_banded_bound_against_exact_per_second_price(t: Tariff, tz: tzinfo, start: datetime, seconds: int) -> None:
    start = start.replace(second=0, microsecond=0)  # increments that divide a minute never straddle a band
    unit = t.time_unit_seconds
    total = -(-advance_time(t, tz, start, Meter(), seconds).time_cost_num // unit)
    exact_num = sum(reference_band(t, tz, start + timedelta(seconds=s))[0] for s in range(seconds))
    assert total * unit >= exact_num
    prices_in_day = [t.time_price, *(b.time_price for b in t.bands)]
    assert total * unit - exact_num < t.time_increment_seconds * max(prices_in_day) + unit


@settings(max_examples=150, deadline=None)
@given(
    t=tariffs(),
    tz=zones,
    start=instants(),
    used=st.integers(0, 2 * 86400),
    traffic=st.integers(0, 10**9),
    balance=st.integers(-10, 20_000),
    horizon=st.integers(0, 3 * 86400),
)
def test_seconds_affordable_is_exactly_what_the_balance_buys(
    t: Tariff, tz: tzinfo, start: datetime, used: int, traffic: int, balance: int, horizon: int
) -> None:
    meter = with_bytes(t, tz, start, advance_time(t, tz, start, Meter(), used), traffic)
    affordable = seconds_affordable(t, tz, start, meter, balance, horizon)
    assert 0 <= affordable <= horizon
    if balance < 0:
        assert affordable == 0
        return
    assert rate(t, tz, meter, Usage(start, meter.seconds + affordable)).debited <= balance
    if affordable < horizon:
        assert rate(t, tz, meter, Usage(start, meter.seconds + affordable + 1)).debited > balance


@settings(max_examples=150, deadline=None)
@given(t=tariffs(), tz=zones, at=instants(), traffic=st.integers(0, 10**10), balance=st.integers(-10, 10**6))
def test_bytes_affordable_is_exactly_what_the_balance_buys(
    t: Tariff, tz: tzinfo, at: datetime, traffic: int, balance: int
) -> None:
    meter = with_bytes(t, tz, at, Meter(), traffic)
    affordable = bytes_affordable(t, tz, at, meter, balance)
    if affordable is None:
        assert band_at(t, tz, at).traffic_price == 0
        assert rate_bytes(t, tz, at, meter, 10**12).debited == 0
        return
    if balance < 0:
        assert affordable == 0
        return
    assert rate_bytes(t, tz, at, meter, affordable).debited <= balance
    assert rate_bytes(t, tz, at, meter, affordable + 1).debited > balance
