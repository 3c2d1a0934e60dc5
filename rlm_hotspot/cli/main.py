"""hotspotctl: the admin command line of the hotspot billing system.

Connection settings come from one TOML file (--config, $HOTSPOT_CONFIG or /etc/rlm-hotspot/hotspot.toml)
with environment overrides (HOTSPOT_DATABASE_URL, HOTSPOT_PIN_KEY_FILE, ...).
"""

from __future__ import annotations

import click
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

from rlm_hotspot.cli.cards import account, cards
from rlm_hotspot.cli.catalog import hotspot, nas, tariff
from rlm_hotspot.cli.console import audit, console
from rlm_hotspot.cli.context import App
from rlm_hotspot.cli.database import db
from rlm_hotspot.cli.flows import flows
from rlm_hotspot.cli.lockout import lockout
from rlm_hotspot.cli.pins import pins
from rlm_hotspot.cli.portal import portal
from rlm_hotspot.cli.quarantine import quarantine
from rlm_hotspot.cli.radius import radius
from rlm_hotspot.cli.reports import report
from rlm_hotspot.cli.sessions import sessions
from rlm_hotspot.cli.worker import worker
from rlm_hotspot.core.cardcode import CardNumberError
from rlm_hotspot.core.money import MoneyError
from rlm_hotspot.db.migrate import MigrationError
from rlm_hotspot.logs import first_line
from rlm_hotspot.pins import PinKeyError
from rlm_hotspot.services.errors import ServiceError
from rlm_hotspot.settings import SettingsError


def _database_message(exc: DBAPIError) -> str:
    detail = first_line(exc)
    if isinstance(exc, OperationalError):
        return f"cannot reach the database: {detail}"
    if isinstance(exc, ProgrammingError) and "does not exist" in detail:
        return f"the database schema is missing or old ({detail}): run `hotspotctl db upgrade`"
    return f"database error: {detail}"


class FriendlyGroup(click.Group):
    """Turns every error a user can cause into one line and exit status 1, never a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (ServiceError, SettingsError, PinKeyError, MigrationError, MoneyError, CardNumberError) as exc:
            raise click.ClickException(str(exc)) from None
        except DBAPIError as exc:
            raise click.ClickException(_database_message(exc)) from None
        except OSError as exc:
            raise click.ClickException(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")) from None


@click.group(cls=FriendlyGroup)
@click.option(
    "--config",
    "config_path",
    envvar="HOTSPOT_CONFIG",
    type=click.Path(dir_okay=False),
    help="Settings file (TOML). Default: $HOTSPOT_CONFIG or /etc/rlm-hotspot/hotspot.toml.",
)
@click.option(
    "--operator",
    envvar="HOTSPOT_OPERATOR",
    help="Who runs the command, for the audit trail. Default: the login name.",
)
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, operator: str | None) -> None:
    """Prepaid hotspot billing: cards, tariffs, hotspots, NAS and reports."""
    app = App(config_path, operator)
    ctx.obj = app
    ctx.call_on_close(app.close)


for group in (db, hotspot, nas, tariff, cards, account, sessions, report, lockout, quarantine, worker, radius,
              portal, flows, console, audit, pins):  # fmt: skip
    cli.add_command(group)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="hotspotctl")
