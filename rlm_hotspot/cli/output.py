"""Tabular output as an aligned table, CSV or JSON (``--format``)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import click

from rlm_hotspot import logs

FORMATS = ("table", "csv", "json")


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    return str(value)


def emit(rows: Sequence[Mapping[str, object]], fmt: str, columns: Sequence[str] | None = None) -> None:
    """Print rows; `columns` fixes their order (default: the first row's keys)."""
    cols = list(columns or (rows[0].keys() if rows else []))
    if fmt == "json":
        click.echo(json.dumps([{c: row.get(c) for c in cols} for row in rows], default=_text, indent=2))
        return
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(cols)
        for row in rows:
            writer.writerow([_text(row.get(c)) for c in cols])
        click.echo(buffer.getvalue(), nl=False)
        return
    if not rows:
        click.echo("(nothing)")
        return
    cells = [[_text(row.get(c)) for c in cols] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(cols)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip())
    click.echo("  ".join("-" * w for w in widths))
    for r in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


Decorated = TypeVar("Decorated", bound=Callable[..., Any])


def format_option(function: Decorated) -> Decorated:
    """The shared ``--format`` option of every tabular command."""
    return click.option(
        "--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True, help="Output format."
    )(function)


def log_format_option(function: Decorated) -> Decorated:
    """The shared ``--log-format`` option of the long-running commands: it sets up logging as it is read."""
    return click.option(
        "--log-format",
        type=click.Choice(logs.FORMATS),
        default="plain",
        show_default=True,
        envvar="HOTSPOT_LOG_FORMAT",
        expose_value=False,
        callback=lambda _ctx, _param, value: logs.setup(value),
        help="One line per event on stderr: plain text (journald-aware) or one JSON object per line.",
    )(function)
