"""Turning what an admin types (dates, durations, prices, bands) into values, with clear errors."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo

import click

from rlm_hotspot.core.money import Currency, MoneyError
from rlm_hotspot.core.tariff import Band

_DURATION = re.compile(r"(\d+)\s*([wdhms])")
_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str) -> timedelta:
    """'30d', '12h', '1d12h', '90m', '3600s' or plain seconds."""
    cleaned = text.strip().lower()
    if cleaned.isdigit():
        return timedelta(seconds=int(cleaned))
    parts = _DURATION.findall(cleaned)
    if not parts or _DURATION.sub("", cleaned).strip():
        raise click.BadParameter(f"bad duration {text!r}: use e.g. 30d, 12h, 1d12h, 90m or 3600s")
    return timedelta(seconds=sum(int(n) * _UNITS[u] for n, u in parts))


def parse_when(text: str, tz: tzinfo, *, end_of_day: bool = False) -> datetime:
    """An ISO date or date-time; naive values are local to `tz`; returns UTC.

    A bare date means the start of that local day, or with `end_of_day` the end of it (so
    ``--use-before 2026-12-31`` still allows the whole of 31 December).
    """
    raw = text.strip()
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw)
            moment = datetime.combine(day + timedelta(days=1) if end_of_day else day, time(0), tzinfo=tz)
        else:
            moment = datetime.fromisoformat(raw)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=tz)
    except ValueError:
        raise click.BadParameter(f"bad date {text!r}: use YYYY-MM-DD or YYYY-MM-DDTHH:MM[+HH:MM]") from None
    return moment.astimezone(UTC)


def parse_amount(currency: Currency, text: str) -> int:
    try:
        return currency.parse(text)
    except MoneyError as exc:
        raise click.BadParameter(str(exc)) from None


def parse_band(currency: Currency, text: str, default_traffic_price: int) -> Band:
    """'HH:MM=TIME_PRICE[/TRAFFIC_PRICE]' in the tariff's own units, e.g. '22:00=0.50/0.01'; without a
    traffic price the band keeps the tariff's base traffic price."""
    match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*=\s*([^/\s]+)\s*(?:/\s*(\S+))?\s*", text)
    if not match:
        raise click.BadParameter(f"bad band {text!r}: use HH:MM=TIME_PRICE[/TRAFFIC_PRICE], e.g. 22:00=0.50/0.01")
    hours, minutes = int(match.group(1)), int(match.group(2))
    if hours > 23 or minutes > 59:
        raise click.BadParameter(f"bad band start {match.group(1)}:{match.group(2)}")
    traffic = parse_amount(currency, match.group(4)) if match.group(4) else default_traffic_price
    return Band(hours * 60 + minutes, parse_amount(currency, match.group(3)), traffic)
