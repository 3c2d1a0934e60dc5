"""Rating: what a session costs, exactly, in integer minor units.

Prices
    A ``Tariff`` has a time price (minor units per ``time_unit_seconds``, e.g. per minute or per hour)
    and a traffic price (minor units per ``traffic_unit_bytes``, e.g. per MB = 10**6 or MiB = 2**20),
    counted on one ``TrafficDirection`` (download = bytes sent *to* the guest, upload, or their total).
    Optional time-of-day ``Band``s replace both prices and form a daily cycle: a band applies from its
    local minute-of-day ``start_minute`` until the next band starts, across midnight — the last band of
    the day runs on until the first one starts the next morning, so one band alone is in force all day.
    A tariff with bands never charges its base prices; without bands the base prices apply all day
    (``daily_cycle`` gives both cases as one list). "Local" is the hotspot's time zone, passed in as a
    ``tzinfo``; every instant in and out of this module is timezone-aware UTC.

The meter
    ``Meter`` is the cumulative rating state of one session: online seconds rated so far and two exact
    cost numerators (cost * unit, so they stay integers). ``charged(meter, tariff)`` rounds each
    numerator **up** to a whole minor unit. The debit for an accounting update is always
    ``charged(new) - charged(old)``; because the meter is cumulative and rounding happens only on the
    cumulative value, the total debited is the same however the updates split the usage (replays,
    interim updates, a lost update followed by a bigger one), never negative, and exact. ``rate`` is the
    one way every meter moves — RADIUS accounting, portal heartbeats and NetFlow imports alike: it takes
    the ``Usage`` (new cumulative seconds, bytes priced at given moments) and returns the new meter, the
    charge so far per quantity and the debit per quantity (``Rated``).

Time
    Online time is cut into increments of ``time_increment_seconds`` counted from the session start:
    increment k covers online seconds [k*inc, (k+1)*inc) and starts at wall time
    ``session_start + k*inc``. An increment is charged in full as soon as it is started (s cumulative
    seconds → ceil(s / inc) increments), at the band in force — hotspot local time — at the
    increment's start. Its exact cost numerator is inc * price. Runs of increments inside one band are
    rated arithmetically, so a days-long session at 1-second increments costs a few operations per
    band change, not one per second.

Traffic
    ``rate`` prices each part of billable bytes at the band in force at the instant given with it
    (a RADIUS packet's time, a NetFlow bin's start).

Rounding statement
    Whole started increments are charged, rounded up to the minor unit at the cumulative level. So,
    with one price in force, the total charged for a session never undercharges the exact per-second
    price and exceeds it by less than one increment's price plus one minor unit. With bands,
    each increment is charged at the price in force at its start: with 1-second increments, or with
    increments that never straddle a band change (e.g. per-minute increments from a session start
    on a whole minute), the same bound holds against the exact per-second price; otherwise an
    increment straddling a band change is charged entirely at the earlier band's price.

Inverse
    ``seconds_affordable`` and ``bytes_affordable`` say what a balance still buys (Session-Timeout,
    data caps, "time left" on the portal), using the same arithmetic, so "affordable" is exactly
    "the debit would not exceed the balance". Their cost grows with the band changes up to the horizon
    (a few per day), not with the seconds.

DST
    The band at an instant comes from that instant's local minute-of-day. Band changes are found by
    walking in UTC: the next local boundary is converted with the *current* UTC offset, and any
    offset change before it (a DST transition) is found and cut at first. So a band starting inside a
    skipped hour begins at the transition, and a repeated hour is rated by the wall clock each time.
    Assumes a zone's UTC offset does not change twice within one day (true of real zones in practice).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum
from typing import NamedTuple, TypeGuard

MINUTES_PER_DAY = 24 * 60
_MICROSECOND = timedelta(microseconds=1)
_MICROS_PER_SECOND = 1_000_000


class TrafficDirection(StrEnum):
    """Which bytes are billed; download means bytes sent to the guest's device."""

    DOWNLOAD = "download"
    UPLOAD = "upload"
    TOTAL = "total"


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _require_int(value: object, name: str, minimum: int) -> None:
    if not _is_int(value):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")


def _require_aware(value: datetime, name: str) -> None:
    if not isinstance(value, datetime):
        raise ValueError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got naive {value.isoformat()}")


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def _micros(delta: timedelta) -> int:
    return delta // _MICROSECOND


@dataclass(frozen=True)
class Band:
    """From local minute-of-day ``start_minute`` until the next band starts (across midnight), these prices."""

    start_minute: int
    time_price: int
    traffic_price: int


@dataclass(frozen=True)
class Tariff:
    """Prices in minor units: time per ``time_unit_seconds``, traffic per ``traffic_unit_bytes``."""

    time_price: int
    time_unit_seconds: int
    time_increment_seconds: int
    traffic_price: int
    traffic_unit_bytes: int
    traffic_direction: TrafficDirection
    bands: tuple[Band, ...] = ()

    def __post_init__(self) -> None:
        _require_int(self.time_price, "time_price", 0)
        _require_int(self.time_unit_seconds, "time_unit_seconds", 1)
        _require_int(self.time_increment_seconds, "time_increment_seconds", 1)
        _require_int(self.traffic_price, "traffic_price", 0)
        _require_int(self.traffic_unit_bytes, "traffic_unit_bytes", 1)
        if not isinstance(self.traffic_direction, TrafficDirection):
            raise ValueError(f"traffic_direction must be a TrafficDirection, got {self.traffic_direction!r}")
        if not isinstance(self.bands, tuple):
            raise ValueError("bands must be a tuple of Band")
        previous = -1
        for band in self.bands:
            if not isinstance(band, Band):
                raise ValueError(f"bands must be Band instances, got {band!r}")
            _require_int(band.start_minute, "band start_minute", 0)
            if band.start_minute >= MINUTES_PER_DAY:
                raise ValueError(f"band start_minute must be 0..1439, got {band.start_minute}")
            if band.start_minute <= previous:
                raise ValueError("bands must be sorted by start_minute, each start only once")
            _require_int(band.time_price, "band time_price", 0)
            _require_int(band.traffic_price, "band traffic_price", 0)
            previous = band.start_minute

    @property
    def cycle(self) -> tuple[Band, ...]:
        """The bands in force round the clock: the tariff's bands, or one all-day band of its base prices."""
        return self.bands or (Band(0, self.time_price, self.traffic_price),)

    @property
    def time_is_free(self) -> bool:
        """No time price anywhere in the day: time never costs money."""
        return all(b.time_price == 0 for b in self.cycle)


@dataclass(frozen=True)
class Meter:
    """Cumulative rating state of one session (see the module docstring); never goes backwards."""

    seconds: int = 0
    time_cost_num: int = 0
    traffic_cost_num: int = 0

    def __post_init__(self) -> None:
        _require_int(self.seconds, "seconds", 0)
        _require_int(self.time_cost_num, "time_cost_num", 0)
        _require_int(self.traffic_cost_num, "traffic_cost_num", 0)

    def charged(self, tariff: Tariff) -> int:
        """Total minor units this session has cost so far (see ``charged``)."""
        return charged(self, tariff)


def charged(meter: Meter, tariff: Tariff) -> int:
    """Minor units charged so far: each exact cost rounded up, at the cumulative level only."""
    return _ceil_div(meter.time_cost_num, tariff.time_unit_seconds) + _ceil_div(
        meter.traffic_cost_num, tariff.traffic_unit_bytes
    )


def band_at(tariff: Tariff, tz: tzinfo, at: datetime) -> Band:
    """The prices in force at instant ``at`` (local minute-of-day in ``tz``), as a Band."""
    _require_aware(at, "at")
    local = at.astimezone(tz)
    return _band_for_minute(tariff, local.hour * 60 + local.minute)


def _band_for_minute(tariff: Tariff, minute: int) -> Band:
    cycle = tariff.cycle
    index = bisect_right([band.start_minute for band in cycle], minute) - 1
    return cycle[index]  # before the day's first band starts (index -1), yesterday's last band runs on


def daily_cycle(tariff: Tariff) -> tuple[tuple[int, int, Band], ...]:
    """(start_minute, end_minute, band) for each band as an operator reads the day: from the band in force
    at 00:00 on, each running until the next starts (so ``end_minute`` is smaller than ``start_minute``
    for the band that runs across midnight, and equal to it when one band runs all day)."""
    cycle = tariff.cycle
    following = cycle[1:] + cycle[:1]
    periods = [(band.start_minute, then.start_minute, band) for band, then in zip(cycle, following, strict=True)]
    if cycle[0].start_minute > 0:  # the day begins inside the last band, which runs on across midnight
        periods.insert(0, periods.pop())
    return tuple(periods)


def next_band_change(tariff: Tariff, tz: tzinfo, at: datetime) -> datetime:
    """An instant strictly after ``at`` up to which (exclusive) the band in force cannot change.

    Usually the next band boundary; it may be a DST transition or a boundary where the price does not
    actually change (midnight, inside the band that wraps across it; equal neighbours) — cutting there is
    harmless.
    """
    _require_aware(at, "at")
    local = at.astimezone(tz)
    offset = local.utcoffset()
    assert offset is not None
    minute = local.hour * 60 + local.minute
    boundaries = [band.start_minute for band in tariff.bands if band.start_minute > minute]
    next_minute = boundaries[0] if boundaries else MINUTES_PER_DAY
    local_midnight = local.replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0)
    # Where the wall clock reaches the boundary if the UTC offset stays as it is now.
    candidate = (local_midnight + timedelta(minutes=next_minute) - offset).replace(tzinfo=UTC)
    if candidate.astimezone(tz).utcoffset() == offset:
        return candidate
    return _first_offset_change(tz, at, candidate, offset)


def _first_offset_change(tz: tzinfo, start: datetime, end: datetime, offset: timedelta) -> datetime:
    """First instant in (start, end] whose UTC offset differs from ``offset`` (it does at ``end``)."""
    low, high = 0, _micros(end - start)
    while high - low > 1:
        middle = (low + high) // 2
        if (start + middle * _MICROSECOND).astimezone(tz).utcoffset() == offset:
            low = middle
        else:
            high = middle
    return (start + high * _MICROSECOND).astimezone(UTC)


def _time_price_runs(
    tariff: Tariff, tz: tzinfo, session_start: datetime, first: int, end: int
) -> Iterator[tuple[int, int, int]]:
    """Yield (k_from, k_to, time_price): runs of increments [k_from, k_to) starting in one band."""
    if not tariff.bands:
        if first < end:
            yield first, end, tariff.time_price
        return
    increment = tariff.time_increment_seconds
    increment_micros = increment * _MICROS_PER_SECOND
    k = first
    while k < end:
        start = session_start + timedelta(seconds=k * increment)
        price = band_at(tariff, tz, start).time_price
        change = next_band_change(tariff, tz, start)
        # Increments whose start instant lies before the change: k with k*inc < change - session_start.
        k_next = min(end, _ceil_div(_micros(change - session_start), increment_micros))
        yield k, k_next, price
        k = k_next


def advance_time(tariff: Tariff, tz: tzinfo, session_start: datetime, meter: Meter, seconds: int) -> Meter:
    """The meter after ``seconds`` cumulative online seconds (never moves backwards)."""
    _require_aware(session_start, "session_start")
    _require_int(seconds, "seconds", 0)
    if seconds <= meter.seconds:
        return meter
    added = _time_cost_added(tariff, tz, session_start, meter.seconds, seconds)
    return Meter(seconds, meter.time_cost_num + added, meter.traffic_cost_num)


def _time_cost_added(tariff: Tariff, tz: tzinfo, session_start: datetime, rated: int, seconds: int) -> int:
    """The time cost numerator of online seconds ``rated`` to ``seconds`` (the increments they start)."""
    increment = tariff.time_increment_seconds
    first = _ceil_div(rated, increment)
    end = _ceil_div(seconds, increment)
    added = 0
    for k_from, k_to, price in _time_price_runs(tariff, tz, session_start, first, end):
        added += (k_to - k_from) * increment * price
    return added


def billable_bytes(tariff: Tariff, download: int, upload: int) -> int:
    """The bytes the tariff bills, out of what was downloaded (to the guest) and uploaded."""
    _require_int(download, "download", 0)
    _require_int(upload, "upload", 0)
    if tariff.traffic_direction is TrafficDirection.DOWNLOAD:
        return download
    if tariff.traffic_direction is TrafficDirection.UPLOAD:
        return upload
    return download + upload


class BytesAt(NamedTuple):
    """Bytes used each way, priced at the band in force at ``at`` (a RADIUS packet's time, a NetFlow
    bin's start); the tariff's direction says which of them are billable."""

    at: datetime
    download: int
    upload: int


@dataclass(frozen=True, slots=True)
class Usage:
    """What a session used beyond its meter: online time up to ``seconds`` cumulative seconds of the
    session started at ``session_start`` (needed only when the seconds move the meter on), and bytes,
    each part priced at the band of its own moment (so one import may span several bins and bands)."""

    session_start: datetime | None = None
    seconds: int = 0
    traffic: tuple[BytesAt, ...] = ()


@dataclass(frozen=True, slots=True)
class Rated:
    """A meter moved on by some usage: the new meter, what it has cost so far per quantity, and what the
    move debits per quantity (``charged(new) - charged(old)`` split into its time and traffic parts)."""

    meter: Meter
    time_charged: int
    traffic_charged: int
    time_debit: int
    traffic_debit: int
    debit_seconds: int  # online seconds the meter moved on by
    billable_bytes: int  # bytes priced

    @property
    def charged(self) -> int:
        """Minor units the session has cost so far (``charged(meter)``)."""
        return self.time_charged + self.traffic_charged

    @property
    def debited(self) -> int:
        """Minor units this usage costs."""
        return self.time_debit + self.traffic_debit


def rate(tariff: Tariff, tz: tzinfo, old: Meter, usage: Usage) -> Rated:
    """The one meter: ``old`` moved on by ``usage``, for RADIUS accounting, portal heartbeats and NetFlow.

    Time as ``advance_time``, traffic part by part at the band of its moment; each quantity's charge is
    rounded up on its own cumulative numerator, so rating usage in steps debits, in total, exactly what
    rating it in one step does, and never a negative amount.
    """
    _require_int(usage.seconds, "seconds", 0)
    seconds, time_num = old.seconds, old.time_cost_num
    if usage.seconds > seconds:
        if usage.session_start is None:
            raise ValueError("online seconds are rated from the session start: usage has none")
        _require_aware(usage.session_start, "session_start")
        time_num += _time_cost_added(tariff, tz, usage.session_start, seconds, usage.seconds)
        seconds = usage.seconds
    traffic_num, billed = old.traffic_cost_num, 0
    for part in usage.traffic:
        billable = billable_bytes(tariff, part.download, part.upload)
        if billable:
            traffic_num += billable * band_at(tariff, tz, part.at).traffic_price
            billed += billable
    time_charged = _ceil_div(time_num, tariff.time_unit_seconds)
    traffic_charged = _ceil_div(traffic_num, tariff.traffic_unit_bytes)
    return Rated(
        meter=Meter(seconds, time_num, traffic_num),
        time_charged=time_charged,
        traffic_charged=traffic_charged,
        time_debit=time_charged - _ceil_div(old.time_cost_num, tariff.time_unit_seconds),
        traffic_debit=traffic_charged - _ceil_div(old.traffic_cost_num, tariff.traffic_unit_bytes),
        debit_seconds=seconds - old.seconds,
        billable_bytes=billed,
    )


def _budget_numerator(numerator: int, unit: int, balance: int) -> int:
    """How much more numerator fits: ceil((n + x) / u) - ceil(n / u) <= balance  <=>  x <= this."""
    return (_ceil_div(numerator, unit) + balance) * unit - numerator


def seconds_affordable(
    tariff: Tariff, tz: tzinfo, session_start: datetime, meter: Meter, balance: int, horizon: int
) -> int:
    """Most additional online seconds whose time debit stays within ``balance``, capped at ``horizon``.

    Counted from ``meter.seconds`` (wall time ``session_start + meter.seconds``). The rest of an
    already started increment is paid, so it is included even with a zero balance; so are free bands.
    A negative balance buys nothing: 0. ``horizon`` is returned when time is free or the balance lasts
    at least that long (the caller's cap, e.g. a maximum Session-Timeout).
    """
    _require_aware(session_start, "session_start")
    if not _is_int(balance):
        raise ValueError(f"balance must be an integer count of minor units, got {balance!r}")
    _require_int(horizon, "horizon", 0)
    if balance < 0:
        return 0
    if tariff.time_is_free:
        return horizon
    increment = tariff.time_increment_seconds
    started = _ceil_div(meter.seconds, increment)
    paid_rest = started * increment - meter.seconds
    if paid_rest >= horizon:
        return horizon
    end = _ceil_div(meter.seconds + horizon, increment)
    budget = _budget_numerator(meter.time_cost_num, tariff.time_unit_seconds, balance)
    affordable_end = end
    for k_from, k_to, price in _time_price_runs(tariff, tz, session_start, started, end):
        cost = increment * price
        if cost == 0:
            continue
        count = k_to - k_from
        whole = budget // cost
        if whole < count:
            affordable_end = k_from + whole
            break
        budget -= count * cost
    return min(horizon, affordable_end * increment - meter.seconds)


def bytes_affordable(tariff: Tariff, tz: tzinfo, at: datetime, meter: Meter, balance: int) -> int | None:
    """Most additional billable bytes whose debit at ``at``'s band stays within ``balance``.

    None when traffic is free at that band. May include bytes already paid for by the rounding up of
    the traffic cost so far. A negative balance buys nothing: 0.
    """
    if not _is_int(balance):
        raise ValueError(f"balance must be an integer count of minor units, got {balance!r}")
    price = band_at(tariff, tz, at).traffic_price
    if price == 0:
        return None
    if balance < 0:
        return 0
    return _budget_numerator(meter.traffic_cost_num, tariff.traffic_unit_bytes, balance) // price
