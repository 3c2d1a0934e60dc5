"""hotspotctl flows: NetFlow traffic billing — nfacctd configuration, the import loop, its status.

The command group is ``flows``; the importer itself lives in the ``flowimport`` adapter.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import click

from flowimport.collector import CollectorConfigError, build_spec, memory_pipes, write_collector_files
from flowimport.runner import CycleReport, ImporterSettings, import_files, run, spool_state, udp_drops
from rlm_hotspot.cli.context import App, pass_app
from rlm_hotspot.cli.output import emit, format_option, log_format_option
from rlm_hotspot.cli.parsing import parse_duration
from rlm_hotspot.services import flows as service
from rlm_hotspot.services.catalog import get_hotspot


def _seconds(text: str, what: str, minimum: int = 0) -> int:
    seconds = int(parse_duration(text).total_seconds())
    if seconds < minimum:
        raise click.BadParameter(f"{what} must be at least {minimum} s, not {text!r}")
    return seconds


def _policy(bin_text: str, grace_text: str) -> service.ImportPolicy:
    bin_seconds = _seconds(bin_text, "the bin", 1)
    return service.ImportPolicy(bin_seconds=bin_seconds, grace_seconds=_seconds(grace_text, "the grace window"))


@click.group()
def flows() -> None:
    """NetFlow/IPFIX traffic billing through pmacct's nfacctd (see docs/netflow.md)."""


@flows.command("config")
@click.option("--hotspot", required=True, help="Hotspot whose tariff's free networks are tagged free.")
@click.option("--client-net", "client_nets", multiple=True, required=True, help="Guest address pool (CIDR); repeat.")
@click.option(
    "--free-net", "free_nets", multiple=True, help="Never billed: portal, walled garden, local services (CIDR); repeat."
)
@click.option("--collector", default="0.0.0.0:2100", show_default=True, help="IP:PORT nfacctd listens on.")
@click.option(
    "--spool",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory nfacctd writes its per-minute JSON files into.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory for nfacctd.conf and pretag.map.",
)
@click.option("--bin", "bin_text", default="1m", show_default=True, help="Bin length, whole minutes.")
@click.option(
    "--source",
    type=click.Choice(["print", "memory"]),
    default="print",
    show_default=True,
    help="print: spool files, exactly once (recommended); memory: pmacct client, at most once.",
)
@pass_app
def config_command(
    app: App,
    hotspot: str,
    client_nets: tuple[str, ...],
    free_nets: tuple[str, ...],
    collector: str,
    spool: Path,
    out: Path,
    bin_text: str,
    source: str,
) -> None:
    """Write nfacctd.conf and pretag.map for a hotspot.

    Example: hotspotctl flows config --hotspot cafe --client-net 10.1.0.0/16 --free-net 10.1.0.1/32
    --collector 0.0.0.0:2100 --spool /var/spool/hotspot-flows/cafe --out /etc/rlm-hotspot/flows/cafe
    """
    seconds = _seconds(bin_text, "the bin", 60)
    if seconds % 60:
        raise click.BadParameter(f"the bin must be whole minutes (pmacct ignores {bin_text!r})")
    with app.transaction() as db:
        inputs = service.collector_inputs(db, hotspot)
    if inputs.traffic_meter != "netflow":
        click.echo(
            f"warning: hotspot {hotspot!r} meters traffic by {inputs.traffic_meter}: the importer will refuse "
            "it until its traffic meter is netflow",
            err=True,
        )
    try:
        spec = build_spec(
            client_networks=list(client_nets),
            free_networks=[*inputs.free_networks, *free_nets],
            collector=collector,
            spool=spool.resolve(),
            config_dir=out.resolve(),
            bin_minutes=seconds // 60,
            source=source,
        )
    except CollectorConfigError as exc:
        raise click.ClickException(str(exc)) from None
    for path in write_collector_files(spec):
        click.echo(f"wrote {path}")
    run = f"hotspotctl flows run --hotspot {hotspot} --spool {spec.spool} --collector-port {spec.listen_port}"
    if source == "memory":
        run += f" --source memory --config-dir {spec.config_dir}"
    click.echo(f"free (never billed): {', '.join(str(n) for n in spec.free_networks) or 'none'}; client-to-client")
    click.echo(f"start the collector: nfacctd -f {spec.config_dir / 'nfacctd.conf'}")
    click.echo(f"start the importer:  {run}")


@flows.command("run")
@click.option("--hotspot", required=True)
@click.option("--spool", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--settle", default="10s", show_default=True, help="Import a file only once untouched this long.")
@click.option("--interval", default="10s", show_default=True, help="Pause between spool scans.")
@click.option("--bin", "bin_text", default="1m", show_default=True, help="Bin length of the collector.")
@click.option(
    "--grace",
    "grace_text",
    default="3m",
    show_default=True,
    help="How long after its stop a session still owns its IP's late flows.",
)
@click.option("--once", is_flag=True, help="One pass, then exit (status 1 if anything failed).")
@click.option("--source", type=click.Choice(["print", "memory"]), default="print", show_default=True)
@click.option(
    "--config-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="With --source memory: the directory holding the memory plugins' pipes.",
)
@click.option("--collector-port", type=click.IntRange(1, 65535), help="Watch kernel UDP drops on this port.")
@click.option("--metrics-port", type=click.IntRange(1, 65535), help="Serve Prometheus /metrics on this port.")
@click.option("--metrics-address", default="127.0.0.1", show_default=True)
@click.option(
    "--metrics-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Or write a node_exporter textfile (*.prom) after every cycle.",
)
@log_format_option
@pass_app
def run_command(
    app: App,
    hotspot: str,
    spool: Path,
    settle: str,
    interval: str,
    bin_text: str,
    grace_text: str,
    once: bool,
    source: str,
    config_dir: Path | None,
    collector_port: int | None,
    metrics_port: int | None,
    metrics_address: str,
    metrics_file: Path | None,
) -> None:
    """Import settled spool files into traffic debits, in a loop (the hotspot-flows service).

    Example: hotspotctl flows run --hotspot cafe --spool /var/spool/hotspot-flows/cafe --metrics-port 9477
    """
    if not spool.is_dir():
        raise click.ClickException(f"spool directory {spool} does not exist: run `hotspotctl flows config` first")
    if source == "memory" and config_dir is None:
        raise click.BadParameter("--source memory needs --config-dir (where nfacctd's memory pipes are)")
    settings = ImporterSettings(
        hotspot=hotspot,
        spool=spool,
        policy=_policy(bin_text, grace_text),
        settle=timedelta(seconds=0 if source == "memory" else _seconds(settle, "the settle time")),
        interval=timedelta(seconds=_seconds(interval, "the interval", 1)),
        memory_pipes=memory_pipes(config_dir) if source == "memory" and config_dir else None,
        collector_port=collector_port,
        metrics_file=metrics_file,
    )
    report = run(app.settings, settings, once=once, metrics_port=metrics_port, metrics_address=metrics_address)
    if once and report.errors:
        raise click.ClickException(f"{report.errors} error(s) during the import: see the log above")


def _emit_report(report: CycleReport, fmt: str) -> None:
    emit(
        [
            {
                "batches": len(o.imported),
                "first_batch": o.imported[0],
                "records": o.records,
                "sessions": o.sessions,
                "billable_bytes": o.billable_bytes,
                "free_bytes": o.free_bytes,
                "unattributed_bytes": o.unattributed_bytes,
                "debited": o.debited,
                "held_bytes": sum(held.held for held in o.held),
            }
            for o in report.outcomes
            if o.imported
        ],
        fmt,
    )


@flows.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--hotspot", required=True)
@click.option("--bin", "bin_text", default="1m", show_default=True)
@click.option("--grace", "grace_text", default="3m", show_default=True)
@format_option
@pass_app
def import_command(app: App, files: tuple[Path, ...], hotspot: str, bin_text: str, grace_text: str, fmt: str) -> None:
    """Import the complete blocks of spool files now (already imported blocks are skipped); files stay put.

    Example: hotspotctl flows import --hotspot cafe /var/spool/hotspot-flows/cafe/done/down-20261125-120000.json
    """
    settings = ImporterSettings(hotspot=hotspot, spool=files[0].parent, policy=_policy(bin_text, grace_text))
    report = import_files(app.settings, settings, list(files))
    _emit_report(report, fmt)
    if report.replayed:
        click.echo(f"{report.replayed} batch(es) had been imported before: skipped", err=True)
    if report.errors:
        raise click.ClickException(f"{report.errors} batch(es) failed: see the log above")


@flows.command("status")
@click.option("--hotspot", required=True)
@click.option("--spool", type=click.Path(file_okay=False, path_type=Path), help="Also count files waiting there.")
@click.option("--collector-port", type=click.IntRange(1, 65535), help="Also show kernel UDP drops on this port.")
@click.option("--window", default="24h", show_default=True, help="Totals over this period.")
@format_option
@pass_app
def status_command(
    app: App, hotspot: str, spool: Path | None, collector_port: int | None, window: str, fmt: str
) -> None:
    """Last batch, lag, unattributed bytes, malformed records, backlog, failing imports, collector drops.

    Example: hotspotctl flows status --hotspot cafe --spool /var/spool/hotspot-flows/cafe --collector-port 2100
    """
    now = app.now()
    with app.transaction() as db:
        status = service.import_status(db, hotspot, now, parse_duration(window))
        currency = app.currency(db)
    fields: dict[str, object] = {**status.__dict__, "debited": currency.format(status.debited), "window": window}
    if spool is not None:
        try:
            state = spool_state(spool)
        except (OSError, ValueError, TypeError) as exc:
            raise click.ClickException(f"cannot read the spool {spool}: {exc}") from None
        failing, failed = state.failing, state.failed_files
        fields |= {
            "pending_files": state.backlog.files,
            "oldest_pending_bin": state.backlog.oldest_bin_start,
            "failing": "; ".join(f"{f.what}: {f.reason} (since {f.since}, {f.tries} tries)" for f in failing) or "no",
            "moved_to_failed": f"{len(failed)} in {state.failed_dir}" + (f", newest {failed[-1]}" if failed else ""),
        }
    if collector_port is not None:
        drops = udp_drops(collector_port)
        fields["udp_drops"] = "no socket on that port (is nfacctd running?)" if drops is None else drops
    emit([{"field": key, "value": value} for key, value in fields.items()], fmt)


@flows.command("exhausted")
@click.option("--hotspot", help="Only this hotspot.")
@format_option
@pass_app
def exhausted_command(app: App, hotspot: str | None, fmt: str) -> None:
    """Open sessions whose account is at or below zero: what the enforcement worker must cut."""
    with app.transaction() as db:
        hotspot_id = get_hotspot(db, hotspot).id if hotspot else None
        rows = service.accounts_exhausted_with_open_sessions(db, hotspot_id)
    emit([row.__dict__ for row in rows], fmt)
