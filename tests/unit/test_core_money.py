"""Money: parsing what admins type, formatting for people, and the value type's currency guard."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlm_hotspot.core.money import MAX_MINOR_UNITS, Currency, Money, MoneyError

EUR = Currency("EUR", 2)
JPY = Currency("JPY", 0)
KWD = Currency("KWD", 3)


@pytest.mark.parametrize(
    ("text", "minor"),
    [
        ("12.5", 1250),
        ("12,50", 1250),
        ("12", 1200),
        (" 3.00 ", 300),
        ("3.000", 300),  # extra zeros lose nothing
        ("0.01", 1),
        (".5", 50),
        ("12.", 1200),
        ("+7", 700),
        ("0", 0),
        ("12.50 EUR", 1250),
        ("10000000000000", MAX_MINOR_UNITS),
    ],
)
def test_parse_accepts(text: str, minor: int) -> None:
    assert EUR.parse(text) == minor


def test_parse_other_exponents() -> None:
    assert JPY.parse("100") == 100
    assert JPY.parse("100.0") == 100
    assert KWD.parse("1.234") == 1234


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("1.234", "EUR has 2 decimals"),
        ("-1", "negative"),
        ("-0.30", "negative"),
        ("nan", "not a finite number"),
        ("NaN", "not a finite number"),
        ("inf", "not a finite number"),
        ("-Infinity", "negative"),
        ("", "empty"),
        ("   ", "empty"),
        ("EUR", "empty"),
        ("1e3", "expected a number"),
        ("1,234.50", "expected a number"),
        ("1.2.3", "expected a number"),
        ("12 50", "expected a number"),
        ("abc", "expected a number"),
        ("\u0663", "expected a number"),  # an Arabic-Indic digit
        ("10000000000000.01", "too large"),
        ("9" * 60, "too large"),
        ("12.50 USD", "expected a number"),
    ],
)
def test_parse_rejects_with_a_clear_message(text: str, reason: str) -> None:
    with pytest.raises(MoneyError, match=reason):
        EUR.parse(text)


def test_parse_rejection_message_names_the_amount() -> None:
    with pytest.raises(MoneyError) as caught:
        EUR.parse("1.234")
    assert str(caught.value) == "bad amount '1.234': EUR has 2 decimals"
    assert isinstance(caught.value, ValueError)
    with pytest.raises(MoneyError, match="JPY has 0 decimals"):
        JPY.parse("1.5")


def test_format() -> None:
    assert EUR.format(1250) == "12.50 EUR"
    assert EUR.format(-30) == "-0.30 EUR"
    assert EUR.format(0) == "0.00 EUR"
    assert EUR.format(5) == "0.05 EUR"
    assert JPY.format(100) == "100 JPY"
    assert JPY.format(-100) == "-100 JPY"
    assert KWD.format(1001) == "1.001 KWD"
    with pytest.raises(MoneyError):
        EUR.format(1.5)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(minor=st.integers(min_value=0, max_value=MAX_MINOR_UNITS), exponent=st.integers(0, 4))
def test_format_parse_round_trip(minor: int, exponent: int) -> None:
    currency = Currency("XTS", exponent)
    text = currency.format(minor)
    assert currency.parse(text) == minor
    assert currency.parse(text.removesuffix(" XTS")) == minor
    assert currency.parse(text.replace(".", ",")) == minor


def test_currency_validation() -> None:
    with pytest.raises(MoneyError):
        Currency("eur", 2)
    with pytest.raises(MoneyError):
        Currency("EURO", 2)
    with pytest.raises(MoneyError):
        Currency("EUR", 9)
    with pytest.raises(MoneyError):
        Currency("EUR", -1)


def test_money_value_type() -> None:
    a = Money(1250, "EUR")
    b = Money(30, "EUR")
    assert a + b == Money(1280, "EUR")
    assert a - b == Money(1220, "EUR")
    assert b - a == Money(-1220, "EUR")
    assert -b == Money(-30, "EUR")
    assert b < a
    assert sorted([a, b]) == [b, a]
    with pytest.raises(MoneyError, match="cannot mix EUR and USD"):
        a + Money(1, "USD")
    with pytest.raises(MoneyError):
        a - Money(1, "USD")
    with pytest.raises(TypeError):
        a + 1  # type: ignore[operator]
    with pytest.raises(MoneyError):
        Money(1.5, "EUR")  # type: ignore[arg-type]
    with pytest.raises(MoneyError):
        Money(True, "EUR")


@settings(max_examples=200, deadline=None)
@given(st.integers(-(10**15), 10**15), st.integers(-(10**15), 10**15))
def test_money_add_sub_are_exact(x: int, y: int) -> None:
    assert (Money(x, "EUR") + Money(y, "EUR")).minor == x + y
    assert (Money(x, "EUR") + Money(y, "EUR") - Money(y, "EUR")) == Money(x, "EUR")
