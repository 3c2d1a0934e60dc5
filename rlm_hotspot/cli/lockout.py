"""hotspotctl lockout: who is locked out by wrong PINs, and lifting it early."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from rlm_hotspot.cli.context import App, pass_app
from rlm_hotspot.cli.output import emit, format_option
from rlm_hotspot.services.access import clear_lockout, list_lockouts


@click.group()
def lockout() -> None:
    """Lockouts after too many wrong PINs per card number, or wrong PINs and unknown card numbers per client
    (a client is its MAC, else its IP; RADIUS and the portal share the counts)."""


@lockout.command("list")
@click.option("--timezone", default=None, help="IANA zone for the times (default: this machine's local time).")
@format_option
@pass_app
def lockout_list(app: App, timezone: str | None, fmt: str) -> None:
    """Card numbers and clients locked out now; they unlock by themselves when the window passes.

    Example: hotspotctl lockout list --timezone Europe/Moscow
    """
    try:
        zone = ZoneInfo(timezone) if timezone else None
    except (ZoneInfoNotFoundError, ValueError):
        raise click.BadParameter(f"unknown time zone {timezone!r}", param_hint="--timezone") from None
    with app.transaction() as db:
        rows = list_lockouts(db, app.policy, app.now())
    for row in rows:
        for column in ("last_attempt", "first_expiry"):
            moment = row[column]
            if isinstance(moment, datetime):
                row[column] = moment.astimezone(zone)  # None: the local zone
    emit(rows, fmt, ["kind", "subject", "failures", "last_attempt", "first_expiry"])


@lockout.command("clear")
@click.argument("card", required=False)
@click.option("--client", default=None, help="Client MAC (any spelling: 02-00-.., 02:00:..) or IP address.")
@pass_app
def lockout_clear(app: App, card: str | None, client: str | None) -> None:
    """Lift the lockout of a card number or of a client now.

    Example: hotspotctl lockout clear 0003123456789   |   hotspotctl lockout clear --client 02-00-00-77-00-02
    """
    with app.transaction() as db:
        cleared = clear_lockout(db, app.now(), card_text=card, client=client, policy=app.policy)
    if cleared is None:
        click.echo(f"nothing to clear: {'card ' + card if card else 'client ' + str(client)} is not locked out")
        return
    click.echo(f"lockout lifted for {cleared}")
