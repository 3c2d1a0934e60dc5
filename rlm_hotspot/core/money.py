"""Money as an integer count of minor units.

Billing never uses float: every amount is an ``int`` of minor units (cents, kopecks, yen). ``Decimal`` is
used only at the edges, to turn what an admin typed into minor units (``Currency.parse``); formatting
is plain integer arithmetic. ``Money`` is a small value type for the edges (CLI, portal, reports) that
refuses to add amounts of different currencies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Context, Decimal, InvalidOperation

#: Larger than any face value or balance a hotspot could hold; catches typos such as a pasted card number.
MAX_MINOR_UNITS = 10**15

_AMOUNT_SHAPE = re.compile(r"\+?(?:\d+(?:[.,]\d*)?|[.,]\d+)", re.ASCII)
_CURRENCY_CODE = re.compile(r"[A-Z]{3}")


class MoneyError(ValueError):
    """An amount that cannot be billed: a bad text, a mix of currencies, an absurd size."""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Currency:
    """An ISO 4217 currency and its number of decimals (EUR 2, JPY 0), which fixes the minor unit."""

    code: str
    exponent: int

    def __post_init__(self) -> None:
        if not isinstance(self.code, str) or not _CURRENCY_CODE.fullmatch(self.code):
            raise MoneyError(f"bad currency code {self.code!r}: expected three capital letters, e.g. 'EUR'")
        if not _is_int(self.exponent) or not 0 <= self.exponent <= 4:
            raise MoneyError(f"bad currency exponent {self.exponent!r} for {self.code}: expected 0..4")

    def parse(self, text: str) -> int:
        """Turn what a person typed ("12.5", "12,50", " 3 ") into minor units, refusing anything ambiguous.

        Decimal comma or point are both accepted (not both at once: no thousands separators). Extra
        decimals are accepted only when they are zeros ("3.000" EUR), because they lose nothing. A
        trailing code of this currency is accepted, so ``parse(format(x)) == x``.
        """
        if not isinstance(text, str):
            raise MoneyError(f"bad amount {text!r}: expected text")
        cleaned = text.strip()
        if cleaned.upper().endswith(self.code):  # accept what ``format`` prints: "12.50 EUR"
            cleaned = cleaned[: -len(self.code)].rstrip()
        if not cleaned:
            raise MoneyError(f"bad amount {text!r}: empty")
        if cleaned.startswith("-"):
            raise MoneyError(f"bad amount {text!r}: must not be negative")
        if cleaned.lstrip("+").lower() in {"nan", "snan", "inf", "infinity"}:
            raise MoneyError(f"bad amount {text!r}: not a finite number")
        if not _AMOUNT_SHAPE.fullmatch(cleaned):
            raise MoneyError(f"bad amount {text!r}: expected a number such as 12.50")
        try:
            value = Decimal(cleaned.replace(",", "."))
        except InvalidOperation as exc:  # pragma: no cover - the regex admits only valid decimals
            raise MoneyError(f"bad amount {text!r}: not a number") from exc
        if not value.is_finite():  # pragma: no cover - the regex rejects NaN and Infinity
            raise MoneyError(f"bad amount {text!r}: not a finite number")
        # A context wide enough for every digit typed, so scaling is exact whatever the length.
        minor = Context(prec=len(cleaned) + self.exponent + 2).scaleb(value, self.exponent)
        if minor != minor.to_integral_value():
            raise MoneyError(f"bad amount {text!r}: {self.code} has {self.exponent} decimals")
        result = int(minor)
        if result > MAX_MINOR_UNITS:
            raise MoneyError(f"bad amount {text!r}: too large")
        return result

    def format(self, minor: int) -> str:
        """Render minor units for people ("12.50 EUR", "-0.30 EUR", "100 JPY") without float."""
        if not _is_int(minor):
            raise MoneyError(f"bad amount {minor!r}: expected an integer count of minor units")
        sign = "-" if minor < 0 else ""
        if self.exponent == 0:
            return f"{sign}{abs(minor)} {self.code}"
        whole, fraction = divmod(abs(minor), 10**self.exponent)
        return f"{sign}{whole}.{fraction:0{self.exponent}d} {self.code}"


@dataclass(frozen=True, order=True)
class Money:
    """An amount in one currency; adding or subtracting different currencies is a bug, so it raises."""

    minor: int
    currency: str

    def __post_init__(self) -> None:
        if not _is_int(self.minor):
            raise MoneyError(f"bad amount {self.minor!r}: expected an integer count of minor units")
        if not isinstance(self.currency, str) or not _CURRENCY_CODE.fullmatch(self.currency):
            raise MoneyError(f"bad currency code {self.currency!r}: expected three capital letters")

    def _same_currency(self, other: Money) -> None:
        if self.currency != other.currency:
            raise MoneyError(f"cannot mix {self.currency} and {other.currency}")

    def __add__(self, other: object) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: object) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other)
        return Money(self.minor - other.minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)
