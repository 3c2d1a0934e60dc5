"""The one meter, ``rate``: what RADIUS accounting, portal heartbeats and NetFlow imports all debit.

Checked against the building blocks the services strung together before (``advance_time``, bytes
priced at the band of their moment, ``charged`` split per quantity), for additivity over any split of
the usage, and for never debiting a negative amount.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
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
    charged,
    rate,
)
from tests.unit.test_core_tariff import MB, instants, tariffs, with_bytes, zones

MOSCOW = ZoneInfo("Europe/Moscow")
# 1.20/h and 2.00/MB by day (06:00-22:00), 0.60/h and 0.50/MB by night; per-minute increments
DAY_NIGHT = Tariff(120, 3600, 60, 200, MB, TrafficDirection.TOTAL, (Band(360, 120, 200), Band(1320, 60, 50)))


def reference(t: Tariff, tz: tzinfo, old: Meter, usage: Usage) -> Rated:
    """What the services computed before ``rate``: time by ``advance_time``, bytes part by part at the
    band of their moment, and each quantity's charge rounded on its own."""
    meter = old
    if usage.session_start is not None:
        meter = advance_time(t, tz, usage.session_start, meter, usage.seconds)
    billed = 0
    for part in usage.traffic:
        billable = billable_bytes(t, part.download, part.upload)
        price = band_at(t, tz, part.at).traffic_price
        meter = Meter(meter.seconds, meter.time_cost_num, meter.traffic_cost_num + billable * price)
        billed += billable

    def time_charged(m: Meter) -> int:
        return charged(Meter(time_cost_num=m.time_cost_num), t)

    def traffic_charged(m: Meter) -> int:
        return charged(Meter(traffic_cost_num=m.traffic_cost_num), t)

    return Rated(
        meter=meter,
        time_charged=time_charged(meter),
        traffic_charged=traffic_charged(meter),
        time_debit=time_charged(meter) - time_charged(old),
        traffic_debit=traffic_charged(meter) - traffic_charged(old),
        debit_seconds=meter.seconds - old.seconds,
        billable_bytes=billed,
    )


# --- strategies --------------------------------------------------------------------------------------------

byte_counts = st.one_of(st.integers(0, 10), st.integers(0, 10**10))


@st.composite
def traffic(draw: st.DrawFn, start: datetime) -> tuple[BytesAt, ...]:
    """Parts of bytes at moments up to two days after ``start`` (NetFlow bins, RADIUS packets)."""
    offsets = draw(st.lists(st.integers(0, 2 * 86400), max_size=4))
    return tuple(BytesAt(start + timedelta(seconds=s), draw(byte_counts), draw(byte_counts)) for s in offsets)


@st.composite
def meters(draw: st.DrawFn, t: Tariff, tz: tzinfo, start: datetime) -> Meter:
    """A meter some usage has moved on already (possibly with a rounded-up charge still being used up)."""
    meter = advance_time(t, tz, start, Meter(), draw(st.integers(0, 86400)))
    return with_bytes(t, tz, start, meter, draw(byte_counts))


@st.composite
def cases(draw: st.DrawFn) -> tuple[Tariff, tzinfo, datetime, Meter]:
    t, tz, start = draw(tariffs()), draw(zones), draw(instants())
    return t, tz, start, draw(meters(t, tz, start))


# --- exact figures -----------------------------------------------------------------------------------------


def test_a_radius_update_rates_time_by_band_and_bytes_at_the_packet_time() -> None:
    start = datetime(2026, 1, 10, 18, 30, tzinfo=UTC)  # 21:30 in Moscow
    sent = start + timedelta(hours=1)  # 22:30: night
    rated = rate(DAY_NIGHT, MOSCOW, Meter(), Usage(start, 3600, (BytesAt(sent, 3 * MB, MB),)))
    assert rated.meter == Meter(3600, 30 * 60 * 120 + 30 * 60 * 60, 4 * MB * 50)
    assert (rated.time_charged, rated.traffic_charged) == (90, 200)  # 0.60 + 0.30; 4 MB at 0.50
    assert (rated.time_debit, rated.traffic_debit, rated.debited, rated.charged) == (90, 200, 290, 290)
    assert (rated.debit_seconds, rated.billable_bytes) == (3600, 4 * MB)


def test_a_netflow_import_prices_each_bin_at_its_own_band() -> None:
    """A backlog of bins across 22:00 Moscow time, rated in one call, on a meter without time."""
    before, after = datetime(2026, 1, 10, 18, 59, tzinfo=UTC), datetime(2026, 1, 10, 19, 0, tzinfo=UTC)
    old = Meter(traffic_cost_num=MB * 200 - 1)  # 2.00 charged, one byte-price short of it
    rated = rate(DAY_NIGHT, MOSCOW, old, Usage(traffic=(BytesAt(before, MB, 0), BytesAt(after, 0, 2 * MB))))
    assert rated.meter == Meter(0, 0, old.traffic_cost_num + MB * 200 + 2 * MB * 50)
    assert (rated.traffic_charged, rated.traffic_debit, rated.time_debit) == (5 * 100, 3 * 100, 0)
    assert rated.billable_bytes == 3 * MB


def test_a_stale_update_moves_nothing() -> None:
    start = datetime(2026, 1, 10, 12, tzinfo=UTC)
    old = rate(DAY_NIGHT, MOSCOW, Meter(), Usage(start, 600)).meter
    rated = rate(DAY_NIGHT, MOSCOW, old, Usage(start, 300, (BytesAt(start, 0, 0),)))
    assert rated.meter == old
    assert (rated.debited, rated.debit_seconds, rated.billable_bytes) == (0, 0, 0)


def test_usage_is_refused_when_it_cannot_be_rated() -> None:
    start = datetime(2026, 1, 10, 12, tzinfo=UTC)
    with pytest.raises(ValueError, match="session start"):
        rate(DAY_NIGHT, MOSCOW, Meter(), Usage(seconds=1))
    with pytest.raises(ValueError, match="timezone-aware"):
        rate(DAY_NIGHT, MOSCOW, Meter(), Usage(start.replace(tzinfo=None), 1))
    with pytest.raises(ValueError, match="seconds must be at least 0"):
        rate(DAY_NIGHT, MOSCOW, Meter(), Usage(start, -1))
    with pytest.raises(ValueError, match="download must be at least 0"):
        rate(DAY_NIGHT, MOSCOW, Meter(), Usage(traffic=(BytesAt(start, -1, 0),)))
    with pytest.raises(ValueError, match="timezone-aware"):
        rate(DAY_NIGHT, MOSCOW, Meter(), Usage(traffic=(BytesAt(start.replace(tzinfo=None), 1, 0),)))


# --- properties --------------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(case=cases(), seconds=st.integers(0, 3 * 86400), data=st.data())
def test_rate_equals_the_building_blocks(
    case: tuple[Tariff, tzinfo, datetime, Meter], seconds: int, data: st.DataObject
) -> None:
    t, tz, start, old = case
    usage = Usage(start, seconds, data.draw(traffic(start)))
    rated = rate(t, tz, old, usage)
    assert rated == reference(t, tz, old, usage)
    assert rated.charged == charged(rated.meter, t)
    assert rated.debited == charged(rated.meter, t) - charged(old, t)


@settings(max_examples=150, deadline=None)
@given(case=cases(), first=st.integers(0, 3 * 86400), second=st.integers(0, 3 * 86400), data=st.data())
def test_rating_in_two_steps_debits_what_one_step_does(
    case: tuple[Tariff, tzinfo, datetime, Meter], first: int, second: int, data: st.DataObject
) -> None:
    """However the usage is split (interim updates, heartbeats, import batches, a stale packet between),
    each quantity's debits add up to the one-step debit, and none is negative."""
    t, tz, start, old = case
    early, late = data.draw(traffic(start)), data.draw(traffic(start))
    step1 = rate(t, tz, old, Usage(start, first, early))
    step2 = rate(t, tz, step1.meter, Usage(start, second, late))
    whole = rate(t, tz, old, Usage(start, max(first, second), early + late))
    assert step2.meter == whole.meter
    assert step1.time_debit + step2.time_debit == whole.time_debit
    assert step1.traffic_debit + step2.traffic_debit == whole.traffic_debit
    assert step1.debit_seconds + step2.debit_seconds == whole.debit_seconds
    assert step1.billable_bytes + step2.billable_bytes == whole.billable_bytes
    for rated in (step1, step2, whole):
        assert min(rated.time_debit, rated.traffic_debit, rated.debit_seconds, rated.billable_bytes) >= 0
        assert type(rated.time_debit) is int and type(rated.traffic_debit) is int
