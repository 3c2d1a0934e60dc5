"""Card numbers and PINs: codes people can type, that machines can check and attackers cannot guess.

A card has a public **number** (printed, may go in a QR code) and a secret **PIN**.

* Number = 4-digit series + zero-padded serial + one **Damm check digit**. Damm catches every
  single-digit typo and every swap of two adjacent digits, so a typo is told apart from an unknown card
  before any database lookup (and does not count as a guessing attempt).
* Serials are drawn uniformly at random (not sequential), so one bought card says nothing about others.
* PINs are drawn uniformly from an alphabet, by rejection sampling over random bytes (no modulo bias).
  ``SAFE_ALPHABET`` keeps at most one character of each group that looks alike on print
  (0/O, 1/I/L, 2/Z, 5/S, 8/B), so a PIN can be read back without guessing.

The core owns no randomness: callers pass ``randbytes`` (``secrets.token_bytes`` in production, a
seeded generator in tests).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

SAFE_ALPHABET = "346789ACDEFGHJKLMNPQRTUVWXY"
DIGITS = "0123456789"

CARD_NUMBER_MIN_DIGITS = 6
CARD_NUMBER_MAX_DIGITS = 20
SERIES_DIGITS = 4
MAX_SERIAL_WIDTH = CARD_NUMBER_MAX_DIGITS - SERIES_DIGITS - 1

# The weakly totally anti-symmetric quasigroup of order 10 from H. M. Damm (2004).
_DAMM_TABLE = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)

_SEPARATORS = str.maketrans("", "", "-.")


class CardNumberError(ValueError):
    """A card number that cannot be right; the message is fit to show to the person who typed it."""


def _require_ascii_digits(digits: str) -> None:
    if not isinstance(digits, str) or not digits or any(c not in DIGITS for c in digits):
        raise ValueError(f"expected a non-empty string of digits 0-9, got {digits!r}")


def _damm_interim(digits: str) -> int:
    interim = 0
    for char in digits:
        interim = _DAMM_TABLE[interim][ord(char) - 48]
    return interim


def damm_digit(digits: str) -> str:
    """The Damm check digit to append to ``digits``."""
    _require_ascii_digits(digits)
    return str(_damm_interim(digits))


def has_valid_check_digit(number: str) -> bool:
    """True when the last digit of ``number`` is the Damm check digit of the others."""
    if not isinstance(number, str) or len(number) < 2 or any(c not in DIGITS for c in number):
        return False
    return _damm_interim(number) == 0


def normalise_card_number(text: str) -> str:
    """Reduce what a guest typed ("1234 5678-9.0") to bare digits, or say what is wrong with it."""
    if not isinstance(text, str):
        raise CardNumberError("Please type the card number.")
    digits = "".join(text.split()).translate(_SEPARATORS)
    if not digits:
        raise CardNumberError("Please type the card number.")
    if any(c not in DIGITS for c in digits):
        raise CardNumberError(f"card number {text.strip()!r} must contain digits only")
    if not CARD_NUMBER_MIN_DIGITS <= len(digits) <= CARD_NUMBER_MAX_DIGITS:
        raise CardNumberError(
            f"card number {text.strip()!r} must have {CARD_NUMBER_MIN_DIGITS} to "
            f"{CARD_NUMBER_MAX_DIGITS} digits, it has {len(digits)}"
        )
    if _damm_interim(digits) != 0:
        raise CardNumberError(f"card number {text.strip()!r} has a typo (check digit)")
    return digits


def make_card_number(series: int, serial: int, serial_width: int) -> str:
    """Series (exactly 4 digits) + serial padded to ``serial_width`` + Damm digit."""
    max_width = MAX_SERIAL_WIDTH
    min_width = max(1, CARD_NUMBER_MIN_DIGITS - SERIES_DIGITS - 1)
    if not min_width <= serial_width <= max_width:
        raise ValueError(f"serial_width must be {min_width}..{max_width}, got {serial_width}")
    if not 0 <= series <= 9999:
        raise ValueError(f"series must be 0..9999, got {series}")
    if not 0 <= serial < 10**serial_width:
        raise ValueError(f"serial {serial} does not fit in {serial_width} digits")
    body = f"{series:04d}{serial:0{serial_width}d}"
    return body + str(_damm_interim(body))


def random_serials(count: int, width: int, randbytes: Callable[[int], bytes]) -> list[int]:
    """``count`` distinct serials drawn uniformly from [0, 10**width).

    Refuses batches denser than half the space: beyond that, guessing a valid number gets easy, and
    rejection sampling of distinct values slows down.
    """
    if width < 1:
        raise ValueError(f"width must be at least 1, got {width}")
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    space = 10**width
    if width > MAX_SERIAL_WIDTH:
        raise ValueError(f"width must be at most {MAX_SERIAL_WIDTH}, got {width}")
    if count > space // 2:
        raise ValueError(f"{count} serials of {width} digits is too dense (at most {space // 2}); use a wider serial")
    # Whole machine words, reduced modulo the space below the largest multiple of it (no modulo bias).
    word: Literal["I", "Q"] = "I" if space <= 2**32 else "Q"
    word_size = memoryview(b"").cast("B").cast(word).itemsize
    limit = space * ((1 << (8 * word_size)) // space)
    # Insertion-ordered: the first `count` distinct draws of a uniform stream are a uniform sample.
    chosen: dict[int, None] = {}
    while len(chosen) < count:
        missing = count - len(chosen)
        expected_repeats = missing * (len(chosen) + missing) // space
        wanted = missing + expected_repeats + missing // 64 + 16
        draws = wanted * (1 << (8 * word_size)) // limit + 1
        buf = randbytes(draws * word_size)
        if len(buf) != draws * word_size:
            raise ValueError("randbytes returned the wrong number of bytes")
        fresh = dict.fromkeys([value % space for value in memoryview(buf).cast(word) if value < limit])
        if chosen:
            chosen.update(fresh)
        else:
            chosen = fresh
    serials = list(chosen)
    del serials[count:]
    return serials


def display_card_number(number: str) -> str:
    """Groups of four digits ("1234 5678 90"), easier to read aloud and to type."""
    return " ".join(number[i : i + 4] for i in range(0, len(number), 4))


def _check_alphabet(alphabet: str) -> None:
    if not isinstance(alphabet, str) or not 2 <= len(alphabet) <= 256:
        raise ValueError("a PIN alphabet needs 2 to 256 characters")
    if len(set(alphabet)) != len(alphabet):
        raise ValueError(f"PIN alphabet {alphabet!r} repeats characters (that would bias PINs)")
    if not all(c.isascii() and c.isprintable() and not c.isspace() for c in alphabet):
        raise ValueError(f"PIN alphabet {alphabet!r} must be printable ASCII without spaces")


def generate_pins(count: int, length: int, alphabet: str, randbytes: Callable[[int], bytes]) -> list[str]:
    """``count`` PINs of ``length`` characters, each character uniform over ``alphabet``.

    Bytes at or above the largest multiple of the alphabet size are dropped (rejection sampling), so
    every character is equally likely; ``bytes.translate`` does the mapping at C speed.
    """
    _check_alphabet(alphabet)
    if length < 1:
        raise ValueError(f"PIN length must be at least 1, got {length}")
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    size = len(alphabet)
    accepted = size * (256 // size)
    table = bytes(ord(alphabet[b % size]) if b < accepted else 0 for b in range(256))
    rejected = bytes(range(accepted, 256))
    needed = count * length
    pieces: list[str] = []
    have = 0
    while have < needed:
        missing = needed - have
        draw = missing * 256 // accepted + missing // 64 + 16
        buf = randbytes(draw)
        if len(buf) != draw:
            raise ValueError("randbytes returned the wrong number of bytes")
        piece = buf.translate(table, rejected).decode("ascii")
        pieces.append(piece)
        have += len(piece)
    chars = "".join(pieces)
    return [chars[i : i + length] for i in range(0, needed, length)]


def pin_entropy_bits(alphabet: str, length: int) -> float:
    """Bits of entropy of a uniform PIN, for display ("≥ 40 bits") — never used in billing."""
    _check_alphabet(alphabet)
    return length * math.log2(len(alphabet))
