"""Card numbers (Damm check digit, random serials) and PINs (uniform, unambiguous); their speed is
bench/pure_speed.py's."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlm_hotspot.core.cardcode import (
    DIGITS,
    SAFE_ALPHABET,
    CardNumberError,
    damm_digit,
    display_card_number,
    generate_pins,
    has_valid_check_digit,
    make_card_number,
    normalise_card_number,
    pin_entropy_bits,
    random_serials,
)


def seeded(seed: int) -> Callable[[int], bytes]:
    return random.Random(seed).randbytes


def cycling_bytes() -> Callable[[int], bytes]:
    """Every byte value equally often, in order: any modulo bias would show as unequal counts."""
    position = 0

    def randbytes(n: int) -> bytes:
        nonlocal position
        out = bytes((position + i) % 256 for i in range(n))
        position = (position + n) % 256
        return out

    return randbytes


def single_digit_errors(number: str) -> list[str]:
    return [number[:i] + d + number[i + 1 :] for i, c in enumerate(number) for d in DIGITS if d != c]


def adjacent_transpositions(number: str) -> list[str]:
    return [
        number[:i] + number[i + 1] + number[i] + number[i + 2 :]
        for i in range(len(number) - 1)
        if number[i] != number[i + 1]
    ]


# --- Damm ------------------------------------------------------------------------------------------------


def test_damm_known_vector() -> None:
    assert damm_digit("572") == "4"  # the textbook example
    assert has_valid_check_digit("5724")
    assert not has_valid_check_digit("5723")
    assert not has_valid_check_digit("57a4")
    assert not has_valid_check_digit("")


def test_damm_catches_every_single_digit_error_and_adjacent_swap_exhaustively() -> None:
    for body in map("".join, itertools.product(DIGITS, repeat=3)):
        number = body + damm_digit(body)
        assert has_valid_check_digit(number)
        for wrong in single_digit_errors(number):
            assert not has_valid_check_digit(wrong), (number, wrong)
        for wrong in adjacent_transpositions(number):
            assert not has_valid_check_digit(wrong), (number, wrong)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=DIGITS, min_size=5, max_size=19))
def test_damm_catches_errors_on_card_length_numbers(body: str) -> None:
    number = body + damm_digit(body)
    assert normalise_card_number(number) == number
    for wrong in single_digit_errors(number) + adjacent_transpositions(number):
        assert not has_valid_check_digit(wrong)
        with pytest.raises(CardNumberError, match="typo"):
            normalise_card_number(wrong)


def test_damm_digit_rejects_non_digits() -> None:
    with pytest.raises(ValueError):
        damm_digit("12a")
    with pytest.raises(ValueError):
        damm_digit("")


# --- card numbers -----------------------------------------------------------------------------------------


def test_make_card_number() -> None:
    number = make_card_number(42, 1234567, 8)
    assert number[:4] == "0042"
    assert number[4:12] == "01234567"
    assert len(number) == 13
    assert has_valid_check_digit(number)
    assert normalise_card_number(number) == number
    for series, serial, width in [
        (10000, 1, 8),
        (-1, 1, 8),
        (1, 10**8, 8),
        (1, -1, 8),
        (1, 0, 0),
        (1, 0, 16),
    ]:
        with pytest.raises(ValueError):
            make_card_number(series, serial, width)
    assert len(make_card_number(9999, 10**15 - 1, 15)) == 20
    assert len(make_card_number(0, 0, 1)) == 6


def test_normalise_card_number_accepts_human_typing() -> None:
    number = make_card_number(7, 31415926, 8)
    shown = display_card_number(number)
    assert shown == f"{number[:4]} {number[4:8]} {number[8:12]} {number[12:]}"
    assert normalise_card_number(shown) == number
    assert normalise_card_number(f"  {number[:4]}-{number[4:8]}.{number[8:]}\t") == number


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "type the card number"),
        ("  - ", "type the card number"),
        ("1234a5678", "digits only"),
        ("\u0661\u0662\u0663\u0664\u0665\u0666", "digits only"),  # Arabic-Indic digits
        ("12345", "6 to 20 digits"),
        ("1" * 21, "6 to 20 digits"),
    ],
)
def test_normalise_card_number_rejects(text: str, reason: str) -> None:
    with pytest.raises(CardNumberError, match=reason):
        normalise_card_number(text)


def test_typo_message_is_human() -> None:
    number = make_card_number(1, 5, 8)
    typo = number[:-1] + str((int(number[-1]) + 1) % 10)
    with pytest.raises(CardNumberError) as caught:
        normalise_card_number(typo)
    assert str(caught.value) == f"card number '{typo}' has a typo (check digit)"
    assert isinstance(caught.value, ValueError)


# --- serials ----------------------------------------------------------------------------------------------


def test_random_serials_are_distinct_and_in_range() -> None:
    serials = random_serials(5000, 4, seeded(1))
    assert len(serials) == len(set(serials)) == 5000
    assert all(0 <= s < 10**4 for s in serials)
    assert random_serials(0, 8, seeded(1)) == []
    assert random_serials(5000, 4, seeded(1)) == serials  # the caller's randomness decides everything


def test_random_serials_refuse_dense_batches() -> None:
    assert len(random_serials(50, 2, seeded(2))) == 50
    with pytest.raises(ValueError, match="too dense"):
        random_serials(51, 2, seeded(2))
    with pytest.raises(ValueError):
        random_serials(1, 0, seeded(2))


def test_random_serials_are_uniform() -> None:
    counts: Counter[int] = Counter()
    draws = 20_000
    rng = seeded(3)
    for _ in range(draws):
        counts.update(random_serials(1, 1, rng))
    expected = draws // 10
    # 5 standard deviations of a binomial(20000, 0.1) = 5 * sqrt(1800) ~ 212
    assert all(abs(counts[d] - expected) < 212 for d in range(10)), counts


# --- PINs -------------------------------------------------------------------------------------------------


def test_safe_alphabet_has_no_lookalikes() -> None:
    for lookalikes in ("0O", "1IL", "2Z", "5S", "8B"):
        assert len(set(lookalikes) & set(SAFE_ALPHABET)) <= 1, lookalikes
    assert len(set(SAFE_ALPHABET)) == len(SAFE_ALPHABET) == 27


def test_pins_use_only_the_alphabet() -> None:
    pins = generate_pins(1000, 10, SAFE_ALPHABET, seeded(5))
    assert len(pins) == 1000
    assert all(len(p) == 10 and set(p) <= set(SAFE_ALPHABET) for p in pins)
    digits = generate_pins(1000, 6, DIGITS, seeded(5))
    assert all(p.isdigit() and len(p) == 6 for p in digits)
    assert generate_pins(0, 10, SAFE_ALPHABET, seeded(5)) == []


def test_pins_have_no_modulo_bias() -> None:
    # 27 letters: bytes 0..242 are used (9 per letter), 243..255 dropped. Fed every byte equally often,
    # every letter must come out exactly equally often.
    # 972 PINs x 10 characters = 40 cycles of 243 accepted bytes: 40 x 9 = 360 of each letter.
    pins = generate_pins(972, 10, SAFE_ALPHABET, cycling_bytes())
    counts = Counter("".join(pins))
    assert len(counts) == 27
    assert set(counts.values()) == {360}


def test_pins_are_uniform() -> None:
    chars = "".join(generate_pins(27_000, 10, SAFE_ALPHABET, seeded(6)))
    counts = Counter(chars)
    expected = len(chars) // 27  # 10000 each
    # 5 sigma of binomial(270000, 1/27) ~ 5 * 98
    assert all(abs(counts[c] - expected) < 490 for c in SAFE_ALPHABET), counts
    first = Counter(p[0] for p in generate_pins(27_000, 4, DIGITS, seeded(7)))
    assert all(abs(first[d] - 2700) < 250 for d in DIGITS), first


def test_pin_alphabet_and_length_validation() -> None:
    with pytest.raises(ValueError):
        generate_pins(1, 10, "A", seeded(9))
    with pytest.raises(ValueError, match="repeats"):
        generate_pins(1, 10, "AAB", seeded(9))
    with pytest.raises(ValueError):
        generate_pins(1, 10, "AB C", seeded(9))
    with pytest.raises(ValueError):
        generate_pins(1, 0, DIGITS, seeded(9))


def test_pin_entropy() -> None:
    bits = pin_entropy_bits(SAFE_ALPHABET, 10)
    assert math.isclose(bits, 10 * math.log2(27))
    assert bits > 40  # the entropy target operators are told about
    assert math.isclose(pin_entropy_bits(DIGITS, 8), 8 * math.log2(10))
