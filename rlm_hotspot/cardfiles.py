"""The file of cards with their PINs: the A4 scratch-card sheet (printsheet) or a CSV for mail merge and
till receipts. `hotspotctl cards generate --output` and `cards export` write it, the console's batch
export sends it: one writer, so a batch exported in the browser is the file the CLI writes."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Protocol
from zoneinfo import ZoneInfo

from rlm_hotspot.core.money import Currency
from rlm_hotspot.printsheet import PrintableCard, render_scratch_sheet
from rlm_hotspot.services.cards import BatchExport

FORMATS = ("pdf", "csv")
CSV_COLUMNS = ("card_number", "pin", "face_value", "deadline")
MIMETYPES = {"pdf": "application/pdf", "csv": "text/csv"}


class BatchDates(Protocol):
    """The dates a card's face states: a batch being made (BatchSpec) or exported (BatchExport)."""

    @property
    def use_before(self) -> datetime | None: ...
    @property
    def validity(self) -> timedelta | None: ...
    @property
    def expires_at(self) -> datetime | None: ...


@dataclass(frozen=True)
class CardFace:
    """What every card of one file shows besides its number and PIN, already formatted."""

    face_value: str
    title: str
    hotspot: str | None
    deadline: str | None
    portal_url: str


def series_title(name: str | None, series: int) -> str:
    """The sheet's title: the batch's name, else its series."""
    return name or f"Series {series:04d}"


def deadline_text(dates: BatchDates, tz: tzinfo) -> str | None:
    """What the card's face says about its dates, in the hotspot's time zone."""
    parts = []
    if dates.use_before:
        parts.append(f"use before {dates.use_before.astimezone(tz):%Y-%m-%d %H:%M}")
    if dates.validity:
        parts.append(f"valid {_days(dates.validity.total_seconds())} after first use")
    if dates.expires_at:
        parts.append(f"expires {dates.expires_at.astimezone(tz):%Y-%m-%d %H:%M}")
    return "; ".join(parts) or None


def _days(seconds: float) -> str:
    return f"{int(seconds // 86400)} days" if seconds % 86400 == 0 else f"{int(seconds // 3600)} h"


def cards_file(fmt: str, rows: Sequence[tuple[str, str | None]], face: CardFace) -> bytes:
    """The cards (number, PIN) as a printable PDF of scratch cards or as CSV (`fmt` one of FORMATS)."""
    if fmt == "pdf":
        printable = [
            PrintableCard(
                number=n, pin=p or "", face_value=face.face_value, deadline=face.deadline, hotspot=face.hotspot
            )
            for n, p in rows
        ]
        return render_scratch_sheet(printable, title=face.title, portal_url=face.portal_url)
    if fmt != "csv":
        raise ValueError(f"a file of cards is {' or '.join(FORMATS)}, not {fmt!r}")
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    writer.writerows([(n, p or "", face.face_value, face.deadline or "") for n, p in rows])
    return out.getvalue().encode()


def batch_file(export: BatchExport, fmt: str, currency: Currency, portal_url: str) -> bytes:
    """A batch exported with its PINs; `portal_url` is the settings' (the batch's hotspot's own wins)."""
    face = CardFace(
        face_value=currency.format(export.face_value),
        title=series_title(export.name, export.series),
        hotspot=export.hotspot,
        deadline=deadline_text(export, ZoneInfo(export.timezone)),
        portal_url=export.portal_url or portal_url,
    )
    return cards_file(fmt, export.cards, face)
