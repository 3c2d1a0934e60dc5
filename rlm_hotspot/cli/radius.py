"""hotspotctl radius: wire rlm_hotspot into FreeRADIUS, or run a private radiusd for development."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import click

from rlm_hotspot.cli.context import App, pass_app
from rlm_hotspot.cli.output import log_format_option
from rlm_hotspot.radius import config as radconf
from rlm_hotspot.radius.importer import BATCH_SIZE, KEEP_BATCHES, run_importer
from rlm_hotspot.services.catalog import list_nas
from rlm_hotspot.settings import DEFAULT_CONFIG_PATH, load_settings

settings_option = click.option(
    "--settings",
    "settings_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Settings file the module reads (default: --config, $HOTSPOT_CONFIG or /etc/rlm-hotspot/hotspot.toml).",
)
venv_option = click.option(
    "--venv",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The venv radiusd loads the packages from (default: the one hotspotctl runs in).",
)
buffered_option = click.option(
    "--buffered-accounting",
    "buffered",
    is_flag=True,
    help="Answer accounting once it is written to a detail file; `hotspotctl radius import` bills it from there "
    "in batches (docs/radius.md).",
)


@click.group()
def radius() -> None:
    """FreeRADIUS: install the rlm_hotspot module into a server, or run a private one."""


@radius.command()
@click.option(
    "--raddb",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=radconf.SYSTEM_RADDB,
    show_default=True,
    help="The FreeRADIUS config dir to add the module and virtual server to.",
)
@settings_option
@venv_option
@click.option("--auth-port", type=click.IntRange(1, 65535), default=None, help="Let the hotspot server listen here.")
@click.option("--acct-port", type=click.IntRange(1, 65535), default=None, help="... and take accounting here.")
@buffered_option
@pass_app
def install(
    app: App,
    raddb: Path,
    settings_path: Path | None,
    venv: Path | None,
    auth_port: int | None,
    acct_port: int | None,
    buffered: bool,
) -> None:
    """Add the `hotspot` modules (python3, and `hotspot_sql` for the logins' database call) and virtual server
    to an existing FreeRADIUS, then check it with -C.

    Other sites and modules are left alone; if the check fails, every change is undone.
    """
    if (auth_port is None) != (acct_port is None):
        raise click.UsageError("give both --auth-port and --acct-port, or neither")
    listen = radconf.Listen(auth_port, acct_port) if auth_port and acct_port else None
    with _config_errors():
        change, _ = radconf.install(
            raddb,
            settings_file=_settings_file(app, settings_path),
            venv=venv,
            listen=listen,
            buffered=buffered,
        )
    for path in change.changed:
        click.echo(f"{'wrote' if path.exists() or path.is_symlink() else 'removed'} {path}")
    retired = change.raddb / radconf.RETIRED_BUFFER_SITE
    if retired in change.changed and not retired.exists():
        click.echo(
            "The hotspot-buffer server (billing inside radiusd) is retired: `hotspotctl radius import` bills the "
            "files it left in the spool, once (the hotspot-radius-import service, or `--once` without buffering)."
        )
    click.echo(f"`{radconf.RADIUSD} -C -d {raddb}` passed.")
    if listen is None:
        click.echo(
            "Send NAS requests to it with `virtual_server = hotspot` in their client { } blocks "
            "(`hotspotctl radius clients` prints them), then restart FreeRADIUS."
        )
    else:
        click.echo("Restart FreeRADIUS to start serving.")
    if buffered:
        click.echo("Start the importer that bills the buffer: `systemctl enable --now hotspot-radius-import`.")


@radius.command()
@click.option(
    "--raddb",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=radconf.SYSTEM_RADDB,
    show_default=True,
    help="The FreeRADIUS config dir to take the module and virtual server out of.",
)
def uninstall(raddb: Path) -> None:
    """Undo `radius install`: remove the files it wrote (and only those) and its dictionary line, then check
    FreeRADIUS with -C.

    The package's removal runs it: FreeRADIUS would not start with a module whose code is gone.
    """
    with _config_errors():
        removed = radconf.uninstall(raddb)
        if not removed:
            click.echo(f"{raddb} has nothing of rlm_hotspot: nothing to remove.")
            return
        for path in removed:
            click.echo(f"removed {path}" if not path.exists() else f"restored {path}")
        ok, output = radconf.check(raddb)
    if not ok:
        raise click.ClickException(
            f"`{radconf.RADIUSD} -C -d {raddb}` fails now (a client {{ }} block with "
            f"`virtual_server = {radconf.INSTANCE}`?):\n{radconf.tail(output)}"
        )
    click.echo(f"`{radconf.RADIUSD} -C -d {raddb}` passed. Restart FreeRADIUS.")


@radius.command()
@click.option("--local-secret", default=None, help="Also accept 127.0.0.1 with this secret (tests, radtest).")
@pass_app
def clients(app: App, local_secret: str | None) -> None:
    """Print clients.conf blocks for every NAS in the database (pointed at the hotspot virtual server)."""
    with _config_errors():
        click.echo(radconf.clients_text(_clients(app, local_secret)), nl=False)


@radius.command()
@click.option("--auth-port", type=click.IntRange(1, 65535), default=18120, show_default=True)
@click.option("--acct-port", type=click.IntRange(1, 65535), default=18130, show_default=True)
@click.option("--address", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--confdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("var/radius"),
    show_default=True,
    help="Private config dir (rewritten on every start).",
)
@click.option("--local-secret", default="testing123", show_default=True, help="Secret for 127.0.0.1 (radtest).")
@click.option("--user", default="nobody", show_default=True, help="Unprivileged user radiusd runs as (when root).")
@click.option("--threaded", is_flag=True, help="Keep the thread pool (-f -xx) instead of -X.")
@buffered_option
@settings_option
@venv_option
@pass_app
def run(
    app: App,
    auth_port: int,
    acct_port: int,
    address: str,
    confdir: Path,
    local_secret: str,
    user: str,
    threaded: bool,
    buffered: bool,
    settings_path: Path | None,
    venv: Path | None,
) -> None:
    """Run a private radiusd with rlm_hotspot in the foreground (own config dir, high ports, unprivileged).

    Clients are every NAS of the database plus 127.0.0.1. Stop it with Ctrl-C.
    """
    if shutil.which(radconf.RADIUSD) is None:
        raise click.ClickException("freeradius is not installed (apt-get install freeradius freeradius-python3)")
    settings_file = _settings_file(app, settings_path)
    run_as = user if os.geteuid() == 0 else None
    if run_as is not None:
        key_file = load_settings(settings_file, environ={}).pin_key_file
        unreadable = radconf.unreadable_by(run_as, [settings_file, key_file])
        if unreadable:
            raise click.ClickException(
                f"radiusd runs as {run_as}, who cannot read {', '.join(map(str, unreadable))} "
                f"(e.g. chgrp {radconf.primary_group(run_as)} FILE && chmod g+r FILE)"
            )
    with _config_errors():
        written = radconf.write_private_confdir(
            confdir,
            settings_file=settings_file,
            listen=radconf.Listen(auth_port, acct_port, address),
            clients=_clients(app, local_secret),
            owner=run_as,
            venv=venv,
            buffered=buffered,
        )
    command = radconf.radiusd_command(written, user=run_as, threaded=threaded)
    click.echo(f"radiusd on {address} auth {auth_port} acct {acct_port}, config in {written}", err=True)
    click.echo(f"try: radtest -t chap CARD PIN {address}:{auth_port} 0 {local_secret}", err=True)
    if buffered:
        spool = written / "log" / "radacct" / "hotspot"
        click.echo(f"accounting is buffered: bill it with `hotspotctl radius import --spool {spool}`", err=True)
    app.close()
    os.execvp(command[0], command)  # noqa: S606 - replaced by radiusd (setpriv execs too), no shell


@contextmanager
def _config_errors() -> Iterator[None]:
    try:
        yield
    except radconf.RadiusConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _settings_file(app: App, given: Path | None) -> Path:
    path = given or (Path(app.config_path) if app.config_path else DEFAULT_CONFIG_PATH)
    if not path.is_file():
        raise click.ClickException(f"settings file {path} not found (give --settings FILE)")
    return path.resolve()


def _clients(app: App, local_secret: str | None) -> list[radconf.Client]:
    with app.transaction() as db:
        known = [
            radconf.Client(row.name, str(row.ip_address), row.secret, row.require_message_authenticator)
            for row in list_nas(db)
        ]
    if local_secret and all(c.address != "127.0.0.1" for c in known):
        known.append(radconf.Client("localhost", "127.0.0.1", local_secret))
    return known


@radius.command("import")
@click.option(
    "--spool",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=Path("/var/log/freeradius/radacct/hotspot"),
    show_default=True,
    help="The directory radiusd's hotspot_buffer module writes buffer.detail into.",
)
@click.option("--once", is_flag=True, help="Bill what is there now, then exit.")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=BATCH_SIZE, show_default=True)
@click.option(
    "--keep-batches-days",
    type=click.IntRange(1, None),
    default=KEEP_BATCHES.days,
    show_default=True,
    help="Keep the radius_batches rows of deleted files this long (they only guard resuming a file).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Serve Prometheus metrics on this port (0: not served; the systemd unit uses 9480).",
)
@click.option("--metrics-address", default="127.0.0.1", show_default=True, help="Address of the metrics endpoint.")
@click.option("--verbose", is_flag=True, help="Log each claimed file and each batch with where its time went.")
@log_format_option
@pass_app
def import_(
    app: App,
    spool: Path,
    once: bool,
    batch_size: int,
    keep_batches_days: int,
    metrics_port: int,
    metrics_address: str,
    verbose: bool,
) -> None:
    """Bill buffered accounting from radiusd's detail file in batches, exactly once, until SIGTERM."""
    report = run_importer(
        app.settings,
        spool,
        once=once,
        batch_size=batch_size,
        keep_batches=timedelta(days=keep_batches_days),
        metrics_port=metrics_port,
        metrics_address=metrics_address,
        verbose=verbose,
    )
    if once:
        click.echo(
            f"{report.packets} packets in {report.batches} batches from {report.files} files; "
            f"{report.unbilled} acknowledged but not billed, {report.failed_packets} refused by the database, "
            f"{report.torn} torn entries"
        )
