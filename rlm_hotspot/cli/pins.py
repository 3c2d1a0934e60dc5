"""hotspotctl pins: the PIN key file's keys, and their rotation (docs/operations.md, "Rotating the PIN key")."""

from __future__ import annotations

import click

from rlm_hotspot.cli.context import App, pass_app
from rlm_hotspot.cli.output import emit, format_option
from rlm_hotspot.pins import add_key, remove_key
from rlm_hotspot.services import pin_keys as service

MAX_UNREADABLE_SHOWN = 5


@click.group()
def pins() -> None:
    """The PIN key file: add a key, re-seal PINs under it, retire the old one."""


@pins.command("status")
@format_option
@pass_app
def status(app: App, fmt: str) -> None:
    """What each key seals, whether the key file has it, and whether it opens the cards sealed under it."""
    with app.transaction() as db:
        statuses = service.key_status(db, app.vault)
    emit(
        [
            {
                "key": s.use.key_id,
                "in_file": "yes" if s.in_file else "MISSING",
                "current": "yes" if s.current else "",
                "encrypted_cards": s.use.encrypted_cards,
                "hashed_cards": s.use.hashed_cards,
                "totp_secrets": s.use.totp_secrets,
                "opens_cards": {None: "", True: "yes", False: "NO: wrong key file?"}[s.opens],
            }
            for s in statuses
        ],
        fmt,
    )


@pins.command("add-key")
@pass_app
def add_key_command(app: App) -> None:
    """Add a fresh key to the key file: new cards are sealed under it from now on."""
    path = app.settings.pin_key_file
    with app.transaction(audit=True):
        key_id = add_key(path)
    click.echo(f"added PIN key {key_id} to {path}; new cards are sealed under it")
    click.echo("next: copy the file to every host of radiusd, the portals and the console, restart them, back it up,")
    click.echo("then `hotspotctl pins rotate`")


@pins.command("rotate")
@click.option(
    "--step",
    default=service.DEFAULT_STEP,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Cards re-sealed per transaction.",
)
@pass_app
def rotate(app: App, step: int) -> None:
    """Re-seal every encrypted PIN and second-factor secret under the current key, a step per transaction.

    Safe to stop and run again: each step commits on its own, and a card has either its old or its new
    secret, both readable while the key file holds both keys.
    """
    vault = app.vault
    with app.transaction() as db:
        totp = service.reseal_totp_secrets(db, vault)
    resealed, unreadable, after_id = 0, list(totp.unreadable), 0
    while True:
        with app.transaction() as db:
            done = service.reseal_cards_step(db, vault, after_id=after_id, limit=step)
        resealed += done.resealed
        unreadable += done.unreadable
        if done.next_after_id is None:
            break
        after_id = done.next_after_id
    click.echo(
        f"re-sealed {resealed} card PIN(s) and {totp.resealed} second-factor secret(s) under key {vault.current_key_id}"
    )
    with app.transaction() as db:
        left = [s.use for s in service.key_status(db, vault) if not s.current and s.use.total]
    for use in left:
        click.echo(
            f"key {use.key_id} still seals {use.hashed_cards} hashed card(s) (a hash cannot be re-sealed)"
            if use.total == use.hashed_cards
            else f"key {use.key_id} still seals {use.total} secret(s)"
        )
    if unreadable:
        shown = ", ".join(unreadable[:MAX_UNREADABLE_SHOWN]) + (
            ", ..." if len(unreadable) > MAX_UNREADABLE_SHOWN else ""
        )
        raise click.ClickException(
            f"{len(unreadable)} secret(s) do not open with the key file's key and were left as they were ({shown}): "
            "is this the key file these cards were made with? (`hotspotctl pins status`)"
        )


@pins.command("retire-key")
@click.argument("key_id", type=click.IntRange(1, 32767))
@pass_app
def retire_key(app: App, key_id: int) -> None:
    """Remove key KEY_ID from the key file, once nothing is sealed under it any more."""
    path = app.settings.pin_key_file
    with app.transaction(audit=True) as db:
        service.check_retirable(db, app.vault, key_id)
        remove_key(path, key_id)
    click.echo(
        f"removed PIN key {key_id} from {path}: copy the file to every host and restart radiusd, portals, console"
    )
    click.echo(f"database backups taken before the rotation need key {key_id}: keep it offline with them, apart")
