"""hotspotctl report: sales, usage and revenue per batch, local day or hotspot."""

from __future__ import annotations

from datetime import UTC, timedelta

import click

from rlm_hotspot.cli.context import App, pass_app
from rlm_hotspot.cli.output import emit, format_option
from rlm_hotspot.cli.parsing import parse_when
from rlm_hotspot.services.reports import report as run_report

MONEY_COLUMNS = {"value_loaded", "time_revenue", "traffic_revenue", "expired_value", "total", "charged"}


def _report_command(kind: str, summary: str) -> click.Command:
    @click.option(
        "--by",
        type=click.Choice(["day", "hotspot", "batch"]),
        default="day",
        show_default=True,
        help="Group rows by local day, hotspot or card batch.",
    )
    @click.option("--from", "since", default=None, help="Period start (date, UTC; default: 30 days ago).")
    @click.option("--to", "until", default=None, help="Period end, inclusive date (default: today).")
    @format_option
    @pass_app
    def command(app: App, by: str, since: str | None, until: str | None, fmt: str) -> None:
        now = app.now()
        end = parse_when(until, UTC, end_of_day=True) if until else now
        start = parse_when(since, UTC) if since else end - timedelta(days=30)
        with app.transaction() as db:
            currency = app.currency(db)
            rows = run_report(db, kind, by, start, end)
        for row in rows:
            for column in MONEY_COLUMNS & row.keys():
                # a report's columns depend on its grouping, so its rows stay dicts; money columns are bigint
                row[column] = currency.format(int(row[column] or 0))  # type: ignore[call-overload]
        emit(rows, fmt)

    example = f"hotspotctl report {kind} --by hotspot --from 2026-11-01 --to 2026-11-30"
    command.__doc__ = f"{summary}\n\n    Example: {example}"
    return report.command(kind)(command)


@click.group()
def report() -> None:
    """Reports over the ledger and the sessions (plain SQL views exist too: admin_*)."""


_report_command("sales", "Value loaded onto accounts: cards activated and top-ups.")
_report_command("usage", "Sessions, online time and traffic.")
_report_command("revenue", "Money consumed by time and traffic (and expired balances).")
