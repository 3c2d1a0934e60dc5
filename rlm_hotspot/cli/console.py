"""hotspotctl console | audit: run the front-desk web console, manage its staff accounts, read the trail."""

from __future__ import annotations

import getpass
import secrets
from datetime import UTC

import click

from console.server import serve
from console.settings import load_console_settings
from rlm_hotspot.cli.context import App, pass_app
from rlm_hotspot.cli.output import emit, format_option, log_format_option
from rlm_hotspot.cli.parsing import parse_when
from rlm_hotspot.pins import PinVault
from rlm_hotspot.services import audit as audit_service
from rlm_hotspot.services import staff as staff_service


@click.group()
def console() -> None:
    """The front-desk web console: sell cards, help guests, see the place (docs/console.md)."""


@console.command("run")
@click.option(
    "--bind",
    default="127.0.0.1:8090",
    show_default=True,
    help="Address and port: loopback by default, never the guests' network (put TLS in front for other hosts).",
)
@click.option("--workers", type=click.IntRange(1, 16), default=2, show_default=True, help="Worker processes.")
@click.option("--plain-http", is_flag=True, help="Cookies without the Secure flag (served over plain HTTP).")
@log_format_option
@pass_app
def run(app: App, bind: str, workers: int, plain_http: bool) -> None:
    """Serve the console with gunicorn until stopped (SIGTERM finishes the requests in flight).

    Example: hotspotctl console run --bind 127.0.0.1:8090
    """
    settings = load_console_settings(
        app.config_path,
        overrides={"cookie_secure": False} if plain_http else {},
        default_secret_key=secrets.token_urlsafe(32),
    )
    PinVault.from_file(settings.core.pin_key_file)  # fail here, with one clear line, not in every worker
    with app.transaction() as db:
        if not staff_service.list_staff(db):
            click.echo("warning: no staff account yet: create one with `hotspotctl console user add NAME --role admin`")
    click.echo(f"console on http://{bind}/")
    serve(settings, bind=bind, workers=workers)


@console.group("user")
def user() -> None:
    """Staff accounts: cashier (sell, help, see), manager (+ reports, adjustments), admin (+ setup, staff)."""


def _ask_password() -> str:
    return click.prompt("Password", hide_input=True, confirmation_prompt="Repeat the password")


@user.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(staff_service.ROLES), required=True, help="What the account may do.")
@pass_app
def user_add(app: App, name: str, role: str) -> None:
    """Create a staff account; the password is asked twice, never echoed.

    Example: hotspotctl console user add anna --role admin
    """
    password = _ask_password()
    with app.transaction() as db:
        staff_service.add_staff(db, name, role, password, app.now())
        audit_service.record(db, _cli_actor(), "staff.add", app.now(), name, role=role)
    click.echo(f"staff account {name} ({role}) created")


@user.command("list")
@format_option
@pass_app
def user_list(app: App, fmt: str) -> None:
    """Staff accounts (never their password hashes)."""
    with app.transaction() as db:
        people = staff_service.list_staff(db)
    emit(
        [
            {
                "name": p.name,
                "role": p.role,
                "active": p.active,
                "second_factor": p.has_totp,
                "created_at": p.created_at,
            }
            for p in people
        ],
        fmt,
    )


@user.command("set")
@click.argument("name")
@click.option("--role", type=click.Choice(staff_service.ROLES), default=None, help="A new role.")
@click.option("--disable/--enable", "disabled", default=None, help="Refuse or allow this account's sign-in.")
@click.option("--password", "new_password", is_flag=True, help="Set a new password (asked twice).")
@click.option("--clear-totp", is_flag=True, help="Turn the second factor off (a lost phone).")
@pass_app
def user_set(
    app: App, name: str, role: str | None, disabled: bool | None, new_password: bool, clear_totp: bool
) -> None:
    """Change a staff account; disabling it or a new password ends its console sessions.

    Example: hotspotctl console user set boris --disable
    """
    password = _ask_password() if new_password else None
    active = None if disabled is None else not disabled
    with app.transaction() as db:
        changed = staff_service.change_staff(db, name, app.now(), role=role, active=active, password=password)
        if clear_totp:
            staff_service.clear_totp(db, name)
        audit_service.record(
            db, _cli_actor(), "staff.change", app.now(), name, role=role, active=active,
            new_password=password is not None, totp_cleared=clear_totp,
        )  # fmt: skip
    click.echo(f"staff account {changed.name}: {changed.role}, {'active' if changed.active else 'disabled'}")


def _cli_actor() -> audit_service.Actor:
    """Changes made at the command line are in the trail too, under the system user who made them."""
    return audit_service.Actor(None, f"hotspotctl:{getpass.getuser()}", "cli")


@click.command("audit")
@click.option("--since", default=None, help="From this date or time (UTC), e.g. 2026-12-01 or '2026-12-01 08:00'.")
@click.option("--who", default=None, help="Only this staff name.")
@click.option("--action", default=None, help="Only this action and its sub-actions, e.g. card or card.sell.")
@click.option("--limit", default=200, show_default=True, type=click.IntRange(1, 1_000_000))
@format_option
@pass_app
def audit(app: App, since: str | None, who: str | None, action: str | None, limit: int, fmt: str) -> None:
    """The audit trail of the console (and of staff changes made here): who, what, when, from where.

    Example: hotspotctl audit --since 2026-12-01 --format csv
    """
    start = parse_when(since, UTC) if since else None
    with app.transaction() as db:
        rows = audit_service.trail(db, since=start, staff_name=who, action=action, limit=limit)
    emit(rows, fmt, ["at", "staff_name", "action", "subject", "client", "detail"])
