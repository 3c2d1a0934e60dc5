"""hotspotctl worker: the options of the process that ends the sessions which must end (rlm_hotspot.worker)."""

from __future__ import annotations

import click

from rlm_hotspot.cli.context import App, pass_app
from rlm_hotspot.cli.output import log_format_option
from rlm_hotspot.nas.gates import DRIVERS, GateError
from rlm_hotspot.worker.loop import run


@click.command("worker")
@click.option(
    "--interval", default=5.0, show_default=True, type=click.FloatRange(min=0.5), help="Seconds between cycles."
)
@click.option("--once", is_flag=True, help="Run one cycle and exit (cron, tests, troubleshooting).")
@click.option(
    "--gate",
    type=click.Choice(sorted(DRIVERS)),
    default="none",
    show_default=True,
    help="Gate driver that closes standalone (portal) sessions: the portal's [portal] gate.",
)
@click.option(
    "--gate-option",
    "gate_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="A gate driver option, as in the portal's [portal.gate_options]; repeatable.",
)
@click.option("--metrics-port", type=click.IntRange(1, 65535), help="Serve Prometheus /metrics on this port.")
@click.option("--metrics-address", default="127.0.0.1", show_default=True)
@log_format_option
@pass_app
def worker(
    app: App,
    interval: float,
    once: bool,
    gate: str,
    gate_options: tuple[str, ...],
    metrics_port: int | None,
    metrics_address: str,
) -> None:
    """Close stale sessions and cut those that must end (exhausted, blocked, expired, heartbeat stopped).

    RADIUS sessions get an RFC 5176 Disconnect-Request to their NAS (the NAS must list this host as a
    CoA client); standalone sessions get their gate closed. One worker per database is enough; a
    second (another node) is safe: each cut is claimed by one of them (docs/ha.md).

    Example: hotspotctl worker --gate nftables --gate-option bind_mac=yes
    """
    try:
        run(
            app.settings,
            app.transaction,
            app.policy,
            interval_s=interval,
            once=once,
            gate=gate,
            gate_options=dict(_key_value(option) for option in gate_options),
            metrics_port=metrics_port,
            metrics_address=metrics_address,
        )
    except GateError as exc:
        raise click.UsageError(str(exc)) from None


def _key_value(option: str) -> tuple[str, str]:
    key, sep, value = option.partition("=")
    if not sep or not key.strip():
        raise click.BadParameter(f"{option!r}: write KEY=VALUE", param_hint="--gate-option")
    return key.strip(), value
