"""hotspotctl portal: the options of the captive portal's server (portal.server), and what its guests must accept."""

from __future__ import annotations

import multiprocessing
import secrets
from pathlib import Path

import click

from portal.server import serve
from portal.settings import load_portal_settings
from rlm_hotspot.cli.context import App, pass_app
from rlm_hotspot.cli.output import log_format_option
from rlm_hotspot.nas.gates import DRIVERS
from rlm_hotspot.pins import PinVault
from rlm_hotspot.services import portal as portal_service


@click.group()
def portal() -> None:
    """The captive portal: card + PIN login, live status with heartbeat, RFC 8908 API."""


@portal.command("run")
@click.option("--hotspot", help="The hotspot this portal serves (default: portal.hotspot in the settings).")
@click.option("--bind", default="127.0.0.1:8080", show_default=True, help="Address and port to listen on.")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=multiprocessing.cpu_count,
    show_default="one per CPU core",
    help="Worker processes (more than the cores measured slower: PostgreSQL wants CPU too).",
)
@click.option(
    "--threads",
    type=click.IntRange(1, 4),
    default=2,
    show_default=True,
    help="Request threads per worker: with 2, one stalled request (up to 2 s) holds up no one; 1 and 2 measured alike.",
)
@click.option("--gate", type=click.Choice(sorted(DRIVERS)), help="Firewall gate (standalone hotspots).")
@click.option("--plain-http", is_flag=True, help="Cookies without the Secure flag (portal served over plain HTTP).")
@click.option("--access-log", is_flag=True, help="Log every request (paths only: PINs are never in a URL).")
@click.option("--metrics-port", type=click.IntRange(1, 65535), help="Serve Prometheus /metrics (all workers) here.")
@click.option("--metrics-address", default="127.0.0.1", show_default=True)
@log_format_option
@pass_app
def run(
    app: App,
    hotspot: str | None,
    bind: str,
    workers: int,
    threads: int,
    gate: str | None,
    plain_http: bool,
    access_log: bool,
    metrics_port: int | None,
    metrics_address: str,
) -> None:
    """Serve the portal with gunicorn until stopped (SIGTERM finishes the requests in flight)."""
    overrides: dict[str, object] = {"hotspot": hotspot, "gate": gate, "cookie_secure": False if plain_http else None}
    settings = load_portal_settings(
        app.config_path,
        overrides={k: v for k, v in overrides.items() if v is not None},
        default_secret_key=secrets.token_urlsafe(32),
    )
    PinVault.from_file(settings.core.pin_key_file)  # fail here, with one clear line, not in every worker
    with app.transaction() as db:
        found = portal_service.portal_hotspot(db, settings.hotspot)
    click.echo(f"portal for hotspot {found.name!r} ({found.mode}, heartbeat {found.heartbeat}) on http://{bind}/")
    serve(
        settings,
        found,
        bind=bind,
        workers=workers,
        threads=threads,
        access_log=access_log,
        metrics_port=metrics_port,
        metrics_address=metrics_address,
    )


@portal.command("terms")
@click.argument("hotspot")
@click.option("--file", "terms_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--clear", is_flag=True, help="No terms: guests log in without a checkbox.")
@pass_app
def terms(app: App, hotspot: str, terms_file: Path | None, clear: bool) -> None:
    """Make guests of HOTSPOT accept the terms of use in FILE (plain text) before they log in."""
    if (terms_file is None) == (not clear):
        raise click.UsageError("give either --file FILE or --clear")
    with app.transaction() as db:
        portal_service.set_terms_of_use(db, hotspot, None if clear else terms_file.read_text())  # type: ignore[union-attr]  # a file unless --clear
    click.echo(f"hotspot {hotspot}: {'no terms of use' if clear else 'guests must accept the terms of use'}")
