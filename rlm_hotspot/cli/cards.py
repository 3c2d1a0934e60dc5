"""hotspotctl cards | account: generate, print, inspect, block and top up prepaid cards."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from rlm_hotspot.cardfiles import CardFace, batch_file, cards_file, deadline_text, series_title
from rlm_hotspot.cli.context import App, pass_app
from rlm_hotspot.cli.output import emit, format_option
from rlm_hotspot.cli.parsing import parse_amount, parse_duration, parse_when
from rlm_hotspot.core.cardcode import display_card_number
from rlm_hotspot.services import cards as svc
from rlm_hotspot.services.catalog import get_hotspot
from rlm_hotspot.services.reports import statement


@click.group()
def cards() -> None:
    """Prepaid cards: card number (with check digit) + secret PIN, with a face value."""


def _hotspot_zone(app: App, hotspot: str | None) -> tzinfo:
    if not hotspot:
        return UTC
    with app.transaction() as db:
        return ZoneInfo(get_hotspot(db, hotspot).timezone)


@cards.command("generate")
@click.option("--count", required=True, type=click.IntRange(1, svc.MAX_BATCH), help="How many cards.")
@click.option("--value", "face_value", required=True, help="Face value of each card, e.g. 5.00.")
@click.option("--name", default=None, help="Batch label for reports.")
@click.option("--series", default=None, type=click.IntRange(0, 9999), help="4-digit series (default: next free).")
@click.option("--tariff", default=None, help="Tariff for these cards (default: the hotspot's tariff).")
@click.option("--hotspot", default=None, help="Only valid at this hotspot (default: every hotspot).")
@click.option("--valid-from", default=None, help="Not usable before this date (local to --hotspot, else UTC).")
@click.option("--use-before", default=None, help="First use must happen by the end of this date.")
@click.option("--validity", default=None, help="Validity period counted from first use, e.g. 30d or 24h.")
@click.option("--expires", default=None, help="Hard expiry date, whatever happens.")
@click.option("--pin-length", default=10, show_default=True, type=int, help="PIN length.")
@click.option(
    "--pin-alphabet",
    type=click.Choice(list(svc.PIN_ALPHABETS)),
    default="safe",
    show_default=True,
    help="safe: digits and capitals without look-alikes; digits: 0-9 only.",
)
@click.option(
    "--output",
    "output",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write the cards with PINs here: .csv or .pdf (printable scratch cards).",
)
@click.option("--show", is_flag=True, help="Print every card number and PIN on the terminal.")
@pass_app
def cards_generate(
    app: App,
    count: int,
    face_value: str,
    name: str | None,
    series: int | None,
    tariff: str | None,
    hotspot: str | None,
    valid_from: str | None,
    use_before: str | None,
    validity: str | None,
    expires: str | None,
    pin_length: int,
    pin_alphabet: str,
    output: str | None,
    show: bool,
) -> None:
    """Generate a batch of cards in one transaction (all or none).

    Example: hotspotctl cards generate --count 100 --value 5.00 --hotspot airport --validity 30d --output batch.pdf
    """
    bits = svc.pin_strength(pin_alphabet, pin_length)
    click.echo(
        f"PIN entropy: {bits:.1f} bits ({pin_length} symbols from {len(svc.PIN_ALPHABETS[pin_alphabet])})", err=True
    )
    if svc.needs_stronger_pin(bits):
        click.echo(f"warning: PINs below {svc.MIN_PIN_BITS} bits are guessable; use a longer PIN", err=True)
    if output and Path(output).suffix.lower() not in (".csv", ".pdf"):
        raise click.BadParameter("the output file must end in .csv or .pdf", param_hint="--output")
    tz = _hotspot_zone(app, hotspot)
    now = app.now()
    with _named_after_commit(Path(output) if output else None) as stage, app.transaction() as db:
        currency = app.currency(db)
        spec = svc.BatchSpec(
            count=count,
            face_value=parse_amount(currency, face_value),
            name=name,
            series=series,
            tariff=tariff,
            hotspot=hotspot,
            valid_from=parse_when(valid_from, tz) if valid_from else None,
            use_before=parse_when(use_before, tz, end_of_day=True) if use_before else None,
            validity=parse_duration(validity) if validity else None,
            expires_at=parse_when(expires, tz, end_of_day=True) if expires else None,
            pin_length=pin_length,
            pin_alphabet=pin_alphabet,
        )
        with click.progressbar(length=count, label="generating", file=sys.stderr) as bar:
            batch = svc.generate_batch(db, app.vault, spec, now, app.settings.pin_mode, bar.update)
        if output:
            face = CardFace(
                face_value=currency.format(spec.face_value),
                title=series_title(name, batch.series),
                hotspot=hotspot,
                deadline=deadline_text(spec, tz),
                portal_url=app.settings.portal_url,
            )
            rows = list(zip(batch.numbers, batch.pins, strict=True))
            stage(cards_file(_file_format(Path(output)), rows, face))
        if output or show:  # its PINs leave as `cards export` lets them: an export of the batch, on the record
            app.record(db, "export", str(batch.batch_id), batch_id=batch.batch_id, cards=count, output=output,
                       show=show)  # fmt: skip
    click.echo(
        f"batch {batch.batch_id}: {count} cards of {currency.format(spec.face_value)}, series {batch.series:04d}"
    )
    if output:
        click.echo(f"cards with PINs written to {output}")
    if show:
        emit(
            [{"card": display_card_number(n), "pin": p} for n, p in zip(batch.numbers, batch.pins, strict=True)],
            "table",
        )


@contextmanager
def _named_after_commit(path: Path | None) -> Iterator[Callable[[bytes], None]]:
    """A file of a transaction's cards, named `path` once the transaction (entered inside this) committed.

    Staged beside it first, owner-only and synced, while the batch is written: a hashed-PIN batch's PINs exist
    nowhere else. If the batch does not commit the staged file goes (no file of cards that do not exist); if
    the rename fails the error names the staged file."""
    staged: Path | None = None

    def stage(data: bytes) -> None:
        nonlocal staged
        assert path is not None and staged is None
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        staged = Path(name)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())

    try:
        yield stage
    except BaseException:
        if staged is not None:
            staged.unlink(missing_ok=True)
        raise
    if staged is not None and path is not None:  # (staged only when there is a path)
        staged.replace(path)


def _file_format(path: Path) -> str:
    """The file's format from its name (checked to end in .csv or .pdf)."""
    return path.suffix.lower().removeprefix(".")


@cards.command("export")
@click.option("--batch", "batch_id", required=True, type=int, help="Batch id.")
@click.option("--output", required=True, type=click.Path(dir_okay=False, writable=True), help=".csv or .pdf")
@pass_app
def cards_export(app: App, batch_id: int, output: str) -> None:
    """Export a batch with its PINs (decrypted with the key file) as CSV or printable PDF.

    Example: hotspotctl cards export --batch 3 --output batch3.pdf
    """
    path = Path(output)
    if path.suffix.lower() not in (".csv", ".pdf"):
        raise click.BadParameter("the output file must end in .csv or .pdf", param_hint="--output")
    with app.transaction(audit=True) as db:  # PINs shown: on the record, though nothing changed
        currency = app.currency(db)
        export = svc.export_batch(db, app.vault, batch_id)
    path.write_bytes(batch_file(export, _file_format(path), currency, app.settings.portal_url))
    click.echo(f"{len(export.cards)} cards written to {output}")


@cards.command("list")
@click.option("--batch", "batch_id", type=int, default=None, help="Only this batch.")
@click.option(
    "--state",
    type=click.Choice(["new", "active", "exhausted", "expired", "blocked", "redeemed"]),
    default=None,
    help="Only cards in this state.",
)
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10_000_000))
@format_option
@pass_app
def cards_list(app: App, batch_id: int | None, state: str | None, limit: int, fmt: str) -> None:
    """List cards with their state and balance (never PINs).

    Example: hotspotctl cards list --batch 3 --state active --format csv
    """
    with app.transaction() as db:
        currency = app.currency(db)
        rows = svc.list_cards(db, batch_id=batch_id, state=state, limit=limit)
    for row in rows:  # rows of the admin_cards view, whose money columns are bigint
        row["balance"] = currency.format(row["balance"]) if row["balance"] is not None else ""  # type: ignore[arg-type]
        row["face_value"] = currency.format(row["face_value"])  # type: ignore[arg-type]
    emit(
        rows,
        fmt,
        ["number", "series", "batch_id", "hotspot", "state", "face_value", "balance", "activated_at", "deadline"],
    )


@cards.command("show")
@click.argument("card")
@pass_app
def cards_show(app: App, card: str) -> None:
    """Show one card: state, balance, deadline (never the PIN).

    Example: hotspotctl cards show "0042 1234 5678 9"
    """
    now = app.now()
    with app.transaction() as db:
        currency = app.currency(db)
        record = svc.find_card(db, card)
        refusal = svc.usable_refusal(record, now)
        deadline = svc.deadline_of(record, now)
        target = svc.redeemed_into(db, record)
    click.echo(f"card:       {display_card_number(record.number)}")
    click.echo(f"batch:      {record.batch_id} (series {record.series:04d})")
    click.echo(f"status:     {record.status}{' (blocked)' if record.blocked else ''}")
    click.echo(f"usable:     {'yes' if refusal is None else 'no - ' + refusal.message}")
    click.echo(f"face value: {currency.format(record.face_value)}")
    if record.status == "redeemed":
        into = display_card_number(target) if target else "another card"
        click.echo(f"redeemed:   {record.redeemed_at:%Y-%m-%d %H:%M:%S %Z}, its value added to {into}")
    elif record.balance is not None:
        click.echo(f"balance:    {currency.format(record.balance)}")
    if record.activated_at:
        click.echo(f"activated:  {record.activated_at:%Y-%m-%d %H:%M:%S %Z}")
    click.echo(
        f"deadline:   {f'{deadline:%Y-%m-%d %H:%M:%S %Z}' if deadline else 'none'}"
        f"{' (if first used now)' if record.status == 'new' and deadline else ''}"
    )


def _block(app: App, blocked: bool, card: str | None, batch_id: int | None) -> None:
    with app.transaction() as db:
        changed = svc.set_blocked(db, blocked=blocked, number=card, batch_id=batch_id)
    click.echo(f"{'blocked' if blocked else 'unblocked'} {changed} card{'s' if changed != 1 else ''}")


@cards.command("block")
@click.argument("card", required=False)
@click.option("--batch", "batch_id", type=int, default=None, help="Block every card of this batch.")
@pass_app
def cards_block(app: App, card: str | None, batch_id: int | None) -> None:
    """Block one card or a whole batch (its sessions are cut by the worker).

    Example: hotspotctl cards block --batch 3
    """
    _block(app, True, card, batch_id)


@cards.command("unblock")
@click.argument("card", required=False)
@click.option("--batch", "batch_id", type=int, default=None, help="Unblock every card of this batch.")
@pass_app
def cards_unblock(app: App, card: str | None, batch_id: int | None) -> None:
    """Unblock one card or a whole batch.

    Example: hotspotctl cards unblock 004212345678
    """
    _block(app, False, card, batch_id)


@cards.command("topup")
@click.argument("target")
@click.argument("source")
@click.option("--pin", prompt="PIN of the top-up card", hide_input=True, help="PIN of SOURCE.")
@pass_app
def cards_topup(app: App, target: str, source: str, pin: str) -> None:
    """Move the value of card SOURCE onto the account of card TARGET.

    Example: hotspotctl cards topup 004212345678 004298765432
    """
    with app.transaction() as db:
        currency = app.currency(db)
        result = svc.top_up(
            db, app.vault, target, source, pin, app.now(), pending_ttl_s=app.policy.pending_session_ttl_s
        )
    click.echo(
        f"moved {currency.format(result.amount)} from {display_card_number(result.source_number)} to "
        f"{display_card_number(result.target_number)}; balance now {currency.format(result.balance)}"
    )


@click.group()
def account() -> None:
    """Accounts: the money behind a card (and the cards topped up onto it)."""


@account.command("statement")
@click.argument("card")
@format_option
@pass_app
def account_statement(app: App, card: str, fmt: str) -> None:
    """Every ledger row of a card's account with its cause, in the hotspot's local time.

    Example: hotspotctl account statement 004212345678 --format csv
    """
    with app.transaction() as db:
        currency = app.currency(db)
        result = statement(db, card)
    if fmt == "table":
        click.echo(
            f"card {display_card_number(result.card_number)}: {result.status}, balance "
            f"{currency.format(result.balance) if result.balance is not None else 'none (never used)'}"
        )
    rows = [
        {
            "time": row.local_time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "cause": row.cause,
            "amount": currency.format(row.amount),
            "balance": currency.format(row.balance_after),
            "seconds": row.seconds,
            "bytes": row.bytes,
            "session": row.session_id,
            "card": row.card_number,
            "note": row.note,
        }
        for row in result.rows
    ]
    emit(rows, fmt, ["time", "cause", "amount", "balance", "seconds", "bytes", "session", "card", "note"])
