"""A bar chart as inline SVG, drawn on the server: no script, no CDN, allowed by the strict CSP."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

WIDTH, HEIGHT, AXIS = 640, 220, 28


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    title: str


@dataclass(frozen=True)
class Chart:
    """Two bars per day or hour (consumed, sold), with its label under them; the template draws it."""

    width: int
    height: int
    consumed: list[Bar]
    sold: list[Bar]
    labels: list[tuple[float, str]]
    top_label: str


def bar_chart(days: Sequence[tuple[str, int, int]], label: Callable[[int], str]) -> Chart:
    """`days`: (label, money consumed, money taken at the desk) per day or hour, oldest first."""
    top = max([1, *(max(consumed, sold) for _, consumed, sold in days)])
    slot = WIDTH / max(1, len(days))
    bar_w = slot * 0.38
    plot_h = HEIGHT - AXIS

    def bar(i: int, offset: float, amount: int, day: str) -> Bar:
        height = plot_h * amount / top
        return Bar(
            round(i * slot + offset, 1),
            round(plot_h - height, 1),
            round(bar_w, 1),
            round(height, 1),
            f"{day}: {label(amount)}",
        )

    return Chart(
        width=WIDTH,
        height=HEIGHT,
        consumed=[bar(i, slot * 0.1, consumed, day) for i, (day, consumed, _) in enumerate(days)],
        sold=[bar(i, slot * 0.1 + bar_w, sold, day) for i, (day, _, sold) in enumerate(days)],
        labels=[(round(i * slot + slot / 2, 1), day) for i, (day, _, _) in enumerate(days)],
        top_label=label(top),
    )
