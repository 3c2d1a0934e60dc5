"""Benchmark: the in-process work behind a big card batch and a long session, with no database.

Times one million card serials, one million PINs, the A4 scratch-card sheet of 2,000 cards, and the rating
of a session of one million seconds across a DST change (a per-second loop would take seconds, the band
arithmetic milliseconds). Prints the figures; the targets they are held to live in the issues, not here.

Usage: .venv/bin/python bench/pure_speed.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from rlm_hotspot.core.cardcode import SAFE_ALPHABET, generate_pins, random_serials
from rlm_hotspot.core.tariff import Band, Meter, Tariff, TrafficDirection, advance_time
from rlm_hotspot.printsheet import PrintableCard, render_scratch_sheet

MILLION = 1_000_000
SHEET_CARDS = 2000


def sheet_cards(count: int) -> list[PrintableCard]:
    """Cards like a real batch's: 13-digit numbers, PINs of letters or digits, some with a deadline and a venue."""
    rnd = random.Random(11)
    return [
        PrintableCard(
            f"0042{rnd.randrange(10**9):09d}",
            f"{rnd.randrange(10**8):08d}" if i % 2 else "".join(rnd.choice(SAFE_ALPHABET) for _ in range(6)),
            "5.00 EUR",
            f"use before 2026-12-{10 + i % 20:02d}" if i % 3 else None,
            "Hotel Riviera" if i % 4 else None,
        )
        for i in range(count)
    ]


def rate_long_session() -> Meter:
    """One million seconds (11.6 days) at 1.20 an hour, per second, with three day bands, across Berlin's fall-back."""
    bands = (Band(0, 30, 0), Band(360, 120, 0), Band(1200, 90, 0))
    per_second = Tariff(120, 3600, 1, 0, 10**6, TrafficDirection.DOWNLOAD, bands)
    start = datetime(2026, 10, 20, 3, 17, 5, tzinfo=UTC)
    return advance_time(per_second, ZoneInfo("Europe/Berlin"), start, Meter(), MILLION)


def best_of(repeat: int, work: Callable[[], object]) -> float:
    """The fastest of `repeat` runs, in seconds: the others measure the machine's other load."""
    timings = []
    for _ in range(repeat):
        began = time.perf_counter()
        work()
        timings.append(time.perf_counter() - began)
    return min(timings)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each step; the fastest is printed")
    args = parser.parse_args()
    cards = sheet_cards(SHEET_CARDS)
    steps: list[tuple[str, Callable[[], object]]] = [
        ("1,000,000 serials of 8 digits", lambda: random_serials(MILLION, 8, random.Random(4).randbytes)),
        ("1,000,000 PINs of 10 letters", lambda: generate_pins(MILLION, 10, SAFE_ALPHABET, random.Random(8).randbytes)),
        (
            f"scratch sheet of {SHEET_CARDS:,} cards",
            lambda: render_scratch_sheet(cards, title="Wi-Fi", portal_url="https://hotspot.example/"),
        ),
        ("rating 1,000,000 s per second", rate_long_session),
    ]
    for name, work in steps:
        print(f"{name:<34} {best_of(args.repeat, work) * 1000:9.1f} ms  (best of {args.repeat})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
