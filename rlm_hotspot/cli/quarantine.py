"""hotspotctl quarantine: usage no link could have carried, held until an admin releases or dismisses it."""

from __future__ import annotations

import getpass

import click

from rlm_hotspot.cli.context import App, pass_app
from rlm_hotspot.cli.output import emit, format_option
from rlm_hotspot.services import quarantine as service

COLUMNS = ["id", "received_at", "source", "reason", "quantity", "held", "reported", "hotspot", "nas", "card_number",
           "session_id", "identity", "state", "resolved_by", "resolution_note"]  # fmt: skip


@click.group()
def quarantine() -> None:
    """Usage beyond the bounds (time beyond the clock, bytes beyond the line rate, absurd counters)."""


@quarantine.command("list")
@click.option("--state", type=click.Choice([*service.STATES, "all"]), default="held", show_default=True)
@click.option("--source", type=click.Choice(service.SOURCES), default=None)
@click.option("--limit", type=click.IntRange(1, 100_000), default=100, show_default=True)
@format_option
@pass_app
def quarantine_list(app: App, state: str, source: str | None, limit: int, fmt: str) -> None:
    """Held usage, newest first: what a packet or flow record reported, and why it was not billed.

    Held amounts are seconds (quantity `seconds`) or bytes (`upload`: from the guest, `download`: to the
    guest). Example: hotspotctl quarantine list --source radius --format csv
    """
    with app.transaction() as db:
        rows = service.list_usage(db, state=None if state == "all" else state, source=source, limit=limit)
    emit(rows, fmt, COLUMNS)


@quarantine.command("release")
@click.argument("quarantine_id", type=int)
@click.option("--reason", required=True, help="Why it is billed after all (kept with the decision).")
@pass_app
def quarantine_release(app: App, quarantine_id: int, reason: str) -> None:
    """Bill held usage to its session after all (its tariff, like any update; once).

    Example: hotspotctl quarantine release 12 --reason "NAS clock was reset; usage confirmed with the site"
    """
    with app.transaction() as db:
        debited = service.release(db, quarantine_id, by=getpass.getuser(), reason=reason, now=app.now())
        currency = app.currency(db)
    click.echo(f"quarantine {quarantine_id} released: {currency.format(debited)} debited")


@quarantine.command("dismiss")
@click.argument("quarantine_id", type=int)
@click.option("--reason", required=True, help="Why it is never billed (kept with the decision).")
@pass_app
def quarantine_dismiss(app: App, quarantine_id: int, reason: str) -> None:
    """Decide that held usage is never billed.

    Example: hotspotctl quarantine dismiss 12 --reason "counter glitch after the NAS firmware update"
    """
    with app.transaction() as db:
        service.dismiss(db, quarantine_id, by=getpass.getuser(), reason=reason, now=app.now())
    click.echo(f"quarantine {quarantine_id} dismissed")
