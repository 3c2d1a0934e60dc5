"""Turning what an admin types (dates, durations, prices, bands) into values, with clear errors: the
rules for durations and bands are the core's (shared with the console), here they become click errors."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo

import click

from rlm_hotspot.core import admin_input
from rlm_hotspot.core.money import Currency, MoneyError
from rlm_hotspot.core.tariff import Band


def parse_duration(text: str) -> timedelta:
    """'30d', '12h', '1d12h', '90m', '3600s' or plain seconds (rlm_hotspot.core.admin_input)."""
    try:
        return admin_input.parse_duration(text)
    except admin_input.InputError as exc:
        raise click.BadParameter(str(exc)) from None


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


def parse_bands(currency: Currency, texts: tuple[str, ...], default_traffic_price: int) -> tuple[Band, ...]:
    """`--band` options (rlm_hotspot.core.admin_input), in the order of the day."""
    try:
        return admin_input.parse_bands(currency, texts, default_traffic_price)
    except admin_input.InputError as exc:
        raise click.BadParameter(str(exc)) from None
