"""What an admin types for a tariff or a hotspot (durations, time-of-day price bands), turned into
values with errors that say how to write it right. Shared by `hotspotctl` and the console's Setup forms,
so both accept exactly the same text."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import timedelta

from rlm_hotspot.core.money import Currency, MoneyError
from rlm_hotspot.core.tariff import Band

_DURATION = re.compile(r"(\d+)\s*([wdhms])")
_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_BAND = re.compile(r"\s*(\d{1,2}):(\d{2})\s*=\s*([^/\s]+)\s*(?:/\s*(\S+))?\s*")
BAND_FORMAT = "HH:MM=TIME_PRICE[/TRAFFIC_PRICE], e.g. 22:00=0.50/0.01"


class InputError(ValueError):
    """Text an admin typed that does not say what it must; the message shows the right form."""


def parse_duration(text: str) -> timedelta:
    """'30d', '12h', '1d12h', '90m', '3600s' or plain seconds."""
    cleaned = text.strip().lower()
    if cleaned.isdigit():
        return timedelta(seconds=int(cleaned))
    parts = _DURATION.findall(cleaned)
    if not parts or _DURATION.sub("", cleaned).strip():
        raise InputError(f"bad duration {text!r}: use e.g. 30d, 12h, 1d12h, 90m or 3600s")
    return timedelta(seconds=sum(int(n) * _UNITS[u] for n, u in parts))


def parse_seconds(text: str) -> int:
    """A duration as whole seconds (what the hotspot settings store)."""
    return int(parse_duration(text).total_seconds())


def parse_band(currency: Currency, text: str, default_traffic_price: int) -> Band:
    """'HH:MM=TIME_PRICE[/TRAFFIC_PRICE]' in the tariff's own units, e.g. '22:00=0.50/0.01'; without a
    traffic price the band keeps the tariff's base traffic price."""
    match = _BAND.fullmatch(text)
    if not match:
        raise InputError(f"bad band {text!r}: use {BAND_FORMAT}")
    hours, minutes = int(match.group(1)), int(match.group(2))
    if hours > 23 or minutes > 59:
        raise InputError(f"bad band start {match.group(1)}:{match.group(2)} in {text!r}: use 00:00 to 23:59")
    try:
        time_price = currency.parse(match.group(3))
        traffic_price = currency.parse(match.group(4)) if match.group(4) else default_traffic_price
    except MoneyError as exc:
        raise InputError(f"bad band {text!r}: {exc}") from None
    return Band(hours * 60 + minutes, time_price, traffic_price)


def parse_bands(currency: Currency, texts: Iterable[str], default_traffic_price: int) -> tuple[Band, ...]:
    """Several bands (blank entries skipped), in the order of the day."""
    bands = [parse_band(currency, text, default_traffic_price) for text in texts if text.strip()]
    return tuple(sorted(bands, key=lambda band: band.start_minute))


def base_prices_never_charged(time_price: int, traffic_price: int, bands: tuple[Band, ...]) -> list[str]:
    """Which base prices ("time", "traffic") no band repeats. Bands run round the clock, so such a price
    is charged at no time of day: the admin surely meant it for the hours before the first band, and
    would silently lose it."""
    if not bands:
        return []
    unused = []
    if time_price and time_price not in {band.time_price for band in bands}:
        unused.append("time")
    if traffic_price and traffic_price not in {band.traffic_price for band in bands}:
        unused.append("traffic")
    return unused
