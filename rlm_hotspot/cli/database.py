"""hotspotctl db: create and upgrade the schema."""

from __future__ import annotations

import click

from rlm_hotspot.cli.context import App, pass_app
from rlm_hotspot.db import migrate
from rlm_hotspot.pins import create_key_file
from rlm_hotspot.services.catalog import init_installation


@click.group()
def db() -> None:
    """Create, upgrade and inspect the billing schema."""


@db.command("init")
@click.option("--currency", "currency_code", default="EUR", show_default=True, help="ISO 4217 code.")
@click.option("--decimals", default=2, show_default=True, type=int, help="Minor-unit digits (JPY: 0).")
@pass_app
def db_init(app: App, currency_code: str, decimals: int) -> None:
    """Create the PIN key file (if missing), apply every migration and fix the currency.

    Example: hotspotctl db init --currency EUR --decimals 2
    """
    if create_key_file(app.settings.pin_key_file):
        click.echo(f"created PIN key file {app.settings.pin_key_file} (keep it out of database backups)")
    _upgrade(app)
    with app.transaction() as db:
        currency = init_installation(db, currency_code, decimals)
    click.echo(f"installation currency: {currency.code} ({currency.exponent} decimals)")


@db.command("upgrade")
@pass_app
def db_upgrade(app: App) -> None:
    """Apply the pending migrations from sql/ (running it again does nothing).

    Example: hotspotctl db upgrade
    """
    _upgrade(app)


def _upgrade(app: App) -> None:
    applied = migrate.upgrade(app.engine)
    for migration in applied:
        click.echo(f"applied {migration.version:03d}_{migration.name}")
    if not applied:
        click.echo("schema is up to date")


@db.command("status")
@pass_app
def db_status(app: App) -> None:
    """Show the applied schema version and what is pending.

    Example: hotspotctl db status
    """
    with app.engine.connect() as conn:
        done = migrate.applied(conn)
        todo = migrate.pending(conn)
    click.echo(f"schema version: {max(done) if done else 0}")
    for migration in todo:
        click.echo(f"pending: {migration.version:03d}_{migration.name}")
    if not todo:
        click.echo("up to date")
