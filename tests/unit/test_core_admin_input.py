"""What an admin types for tariffs and hotspots: the same rules for hotspotctl and the console."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rlm_hotspot.core.admin_input import (
    InputError,
    base_prices_never_charged,
    parse_band,
    parse_bands,
    parse_duration,
    parse_seconds,
)
from rlm_hotspot.core.money import Currency
from rlm_hotspot.core.tariff import Band

EUR = Currency("EUR", 2)


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("10m", 600), ("1d12h", 129_600), (" 2W ", 1_209_600)]
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)
    assert parse_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "ten minutes", "10x", "10m tea", "-5"])
def test_a_bad_duration_says_how_to_write_one(text: str) -> None:
    with pytest.raises(InputError, match=r"bad duration .*e\.g\. 30d, 12h"):
        parse_duration(text)


def test_a_band_with_and_without_its_own_traffic_price() -> None:
    assert parse_band(EUR, "22:00=0.50/0.01", 5) == Band(22 * 60, 50, 1)
    assert parse_band(EUR, " 7:30 = 1.20 ", 5) == Band(7 * 60 + 30, 120, 5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("22h=0.50", r"bad band '22h=0\.50': use HH:MM=TIME_PRICE"),
        ("24:00=0.50", r"bad band start 24:00 .*00:00 to 23:59"),
        ("07:60=0.50", r"bad band start 07:60"),
        ("07:00=abc", r"bad band '07:00=abc': "),
        ("07:00=0.50/0.001", r"bad band '07:00=0\.50/0\.001': "),
    ],
)
def test_a_bad_band_names_itself_and_the_right_form(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_band(EUR, text, 0)


def test_bands_are_put_in_the_order_of_the_day_and_blank_lines_skipped() -> None:
    assert parse_bands(EUR, ["22:00=0.60", "", "  ", "07:00=1.20"], 0) == (Band(420, 120, 0), Band(1320, 60, 0))


def test_a_base_price_no_band_repeats_is_reported() -> None:
    night_and_day = (Band(420, 120, 0), Band(1320, 60, 0))
    assert base_prices_never_charged(120, 0, night_and_day) == []
    assert base_prices_never_charged(150, 0, night_and_day) == ["time"]
    assert base_prices_never_charged(120, 3, night_and_day) == ["traffic"]
    assert base_prices_never_charged(150, 3, ()) == []
