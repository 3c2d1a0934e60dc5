"""hotspotctl hotspot | nas | tariff: the things cards are used with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from zoneinfo import ZoneInfo

import click

from rlm_hotspot.cli.context import App, pass_app
from rlm_hotspot.cli.output import Decorated, emit, format_option
from rlm_hotspot.cli.parsing import parse_amount, parse_bands, parse_duration
from rlm_hotspot.core.admin_input import base_prices_never_charged
from rlm_hotspot.core.money import Currency
from rlm_hotspot.core.tariff import Meter, Tariff, bytes_affordable, daily_cycle, seconds_affordable
from rlm_hotspot.services import catalog as svc
from rlm_hotspot.services.uam import set_nas_uam

MB_UNITS = {"MB": 1_000_000, "MiB": 1_048_576}


@click.group()
def hotspot() -> None:
    """Hotspots: a place with a time zone, a tariff and billing settings."""


@hotspot.command("add")
@click.argument("name")
@click.option("--timezone", required=True, help="IANA time zone of the place, e.g. Europe/Moscow.")
@click.option("--tariff", required=True, help="Tariff in force at this hotspot.")
@click.option(
    "--mode",
    type=click.Choice(["radius", "standalone"]),
    default="radius",
    show_default=True,
    help="Behind a RADIUS NAS, or the portal opens a firewall gate itself.",
)
@click.option(
    "--traffic-meter",
    type=click.Choice(["radius", "netflow"]),
    default=None,
    help="Where bytes are counted (default: radius, or netflow for standalone).",
)
@click.option(
    "--interim",
    "interim_interval",
    default="5m",
    show_default=True,
    help="Acct-Interim-Interval sent to the NAS (at least 60 s).",
)
@click.option("--idle-timeout", default=None, help="Idle-Timeout sent to the NAS, e.g. 10m.")
@click.option(
    "--heartbeat",
    type=click.Choice(["on", "off", "grace"]),
    default=None,
    help="Whether the portal page must stay open (heartbeats) for the session to live "
    "(default: on for standalone, off for radius: the NAS meters time and ends idle sessions).",
)
@click.option(
    "--heartbeat-timeout", default="90s", show_default=True, help="How long without heartbeats before the session ends."
)
@click.option(
    "--hidden-grace",
    default="10m",
    show_default=True,
    help="How long a status page in the background (a phone freezes it) keeps its session; billed, like all open time.",
)
@click.option(
    "--max-rate",
    "max_rate_kbps",
    type=click.IntRange(1),
    default=1_000_000,
    show_default=True,
    help="The most one guest's link carries each way, kbit/s: bytes a NAS or NetFlow reports beyond it are "
    "held in the quarantine, not billed.",
)
@click.option("--portal-url", default=None, help="Portal address printed on cards (QR code).")
@pass_app
def hotspot_add(
    app: App,
    name: str,
    timezone: str,
    tariff: str,
    mode: str,
    traffic_meter: str | None,
    interim_interval: str,
    idle_timeout: str | None,
    heartbeat: str | None,
    heartbeat_timeout: str,
    hidden_grace: str,
    max_rate_kbps: int,
    portal_url: str | None,
) -> None:
    """Add a hotspot.

    Example: hotspotctl hotspot add airport --timezone Europe/Moscow --tariff standard
    """
    spec = svc.HotspotSpec(
        name=name,
        timezone=timezone,
        tariff=tariff,
        mode=mode,
        traffic_meter=traffic_meter or ("netflow" if mode == "standalone" else "radius"),
        interim_interval=int(parse_duration(interim_interval).total_seconds()),
        idle_timeout=int(parse_duration(idle_timeout).total_seconds()) if idle_timeout else None,
        heartbeat=heartbeat or ("on" if mode == "standalone" else "off"),
        heartbeat_timeout=int(parse_duration(heartbeat_timeout).total_seconds()),
        hidden_grace=int(parse_duration(hidden_grace).total_seconds()),
        max_rate_kbps=max_rate_kbps,
        portal_url=portal_url,
    )
    with app.transaction() as db:
        hotspot_id = svc.add_hotspot(db, spec)
    click.echo(f"hotspot {name} added (id {hotspot_id})")


@hotspot.command("list")
@format_option
@pass_app
def hotspot_list(app: App, fmt: str) -> None:
    """List hotspots with their settings.

    Example: hotspotctl hotspot list --format csv
    """
    with app.transaction() as db:
        rows = [asdict(r) for r in svc.list_hotspots(db)]
    emit(
        rows,
        fmt,
        [
            "id",
            "name",
            "timezone",
            "tariff",
            "mode",
            "traffic_meter",
            "interim_interval",
            "idle_timeout",
            "heartbeat",
            "heartbeat_timeout",
            "hidden_grace",
            "max_rate_kbps",
            "portal_url",
        ],
    )


def _seconds(text: str | None) -> int | None:
    return None if text is None else int(parse_duration(text).total_seconds())


@hotspot.command("set")
@click.argument("name")
@click.option("--timezone", default=None, help="IANA time zone of the place.")
@click.option("--tariff", default=None, help="Tariff for sessions that start from now on (open ones keep theirs).")
@click.option("--traffic-meter", type=click.Choice(["radius", "netflow"]), default=None)
@click.option("--interim", "interim_interval", default=None, help="Acct-Interim-Interval (at least 60 s).")
@click.option("--idle-timeout", default=None, help="Idle-Timeout sent to the NAS, e.g. 10m; 'off' for none.")
@click.option("--heartbeat", type=click.Choice(["on", "off", "grace"]), default=None)
@click.option("--heartbeat-timeout", default=None, help="How long without heartbeats before the session ends.")
@click.option("--hidden-grace", default=None, help="How long a status page in the background keeps its session.")
@click.option("--max-rate", "max_rate_kbps", type=click.IntRange(1), default=None, help="Line rate bound, kbit/s.")
@click.option("--portal-url", default=None, help="Portal address printed on cards; 'none' for the settings' one.")
@pass_app
def hotspot_set(
    app: App,
    name: str,
    timezone: str | None,
    tariff: str | None,
    traffic_meter: str | None,
    interim_interval: str | None,
    idle_timeout: str | None,
    heartbeat: str | None,
    heartbeat_timeout: str | None,
    hidden_grace: str | None,
    max_rate_kbps: int | None,
    portal_url: str | None,
) -> None:
    """Change settings of a hotspot (only those given). Its mode cannot change: add another hotspot.

    Example: hotspotctl hotspot set airport --tariff winter --max-rate 50000 --heartbeat grace
    """
    changes: dict[str, object] = {
        "timezone": timezone,
        "tariff": tariff,
        "traffic_meter": traffic_meter,
        "interim_interval": _seconds(interim_interval),
        "heartbeat": heartbeat,
        "heartbeat_timeout": _seconds(heartbeat_timeout),
        "hidden_grace": _seconds(hidden_grace),
        "max_rate_kbps": max_rate_kbps,
    }
    changes = {setting: value for setting, value in changes.items() if value is not None}
    if idle_timeout is not None:
        changes["idle_timeout"] = None if idle_timeout.strip().lower() == "off" else _seconds(idle_timeout)
    if portal_url is not None:
        changes["portal_url"] = None if portal_url.strip().lower() == "none" else portal_url
    if not changes:
        raise click.UsageError("nothing to change: give at least one option (see --help)")
    with app.transaction() as db:
        changed = svc.set_hotspot(db, name, **changes)
    if not changed:
        click.echo(f"hotspot {name}: nothing changed (it already had those settings)")
    for setting, (old, new) in changed.items():
        click.echo(f"hotspot {name}: {setting} {old} -> {new}")


@hotspot.command("remove")
@click.argument("name")
@pass_app
def hotspot_remove(app: App, name: str) -> None:
    """Remove a hotspot nothing refers to (refused once it has NAS, cards or sessions: history stays).

    Example: hotspotctl hotspot remove typo-hotspot
    """
    with app.transaction() as db:
        svc.remove_hotspot(db, name)
    click.echo(f"hotspot {name} removed")


@click.group()
def nas() -> None:
    """NAS: the routers/gateways that ask RADIUS and accept Disconnect-Requests."""


def message_authenticator_option(default: bool | None) -> Callable[[Decorated], Decorated]:
    """--require-message-authenticator/--no-...: one spelling for `nas add` (default on) and `nas set`."""
    return click.option(
        "--require-message-authenticator/--no-require-message-authenticator",
        "require_message_authenticator",
        default=default,
        show_default=default is not None,
        help="FreeRADIUS drops this NAS's Access-Requests that lack Message-Authenticator (BlastRADIUS, "
        "CVE-2024-3596). Turn it off only for a NAS that cannot send it (docs/radius.md).",
    )


NO_MESSAGE_AUTHENTICATOR_WARNING = (
    "warning: FreeRADIUS will accept Access-Requests from NAS {name} without Message-Authenticator, so "
    "a forged answer to it cannot be ruled out (BlastRADIUS, docs/radius.md): use only for a NAS that cannot send it"
)


@nas.command("add")
@click.argument("name")
@click.option("--hotspot", required=True, help="Hotspot the NAS serves.")
@click.option("--ip", "ip_address", required=True, help="NAS-IP-Address / source address of its packets.")
@click.option("--secret", required=True, help="RADIUS shared secret (also used for CoA/Disconnect).")
@click.option("--coa-port", default=3799, show_default=True, type=int, help="UDP port for RFC 5176 requests.")
@click.option(
    "--vendor",
    type=click.Choice(svc.NAS_VENDORS),
    default="generic",
    show_default=True,
    help="Which quota/bandwidth attributes the NAS understands.",
)
@message_authenticator_option(default=True)
@pass_app
def nas_add(
    app: App,
    name: str,
    hotspot: str,
    ip_address: str,
    secret: str,
    coa_port: int,
    vendor: str,
    require_message_authenticator: bool,
) -> None:
    """Register a NAS. FreeRADIUS learns of it from `hotspotctl radius clients` and a restart.

    Example: hotspotctl nas add lobby-router --hotspot airport --ip 10.0.0.1 --secret s3cret --vendor mikrotik
    """
    with app.transaction() as db:
        nas_id = svc.add_nas(
            db,
            name=name,
            hotspot=hotspot,
            ip_address=ip_address,
            secret=secret,
            coa_port=coa_port,
            vendor=vendor,
            require_message_authenticator=require_message_authenticator,
        )
    click.echo(f"NAS {name} added (id {nas_id})")
    if not require_message_authenticator:
        click.echo(NO_MESSAGE_AUTHENTICATOR_WARNING.format(name=name), err=True)


@nas.command("list")
@format_option
@pass_app
def nas_list(app: App, fmt: str) -> None:
    """List NAS (secrets are not shown).

    Example: hotspotctl nas list
    """
    with app.transaction() as db:
        rows = [asdict(r) for r in svc.list_nas(db)]
    emit(rows, fmt, ["id", "name", "hotspot", "ip_address", "coa_port", "vendor", "require_message_authenticator"])


@nas.command("set")
@click.argument("name")
@click.option("--hotspot", default=None, help="Hotspot the NAS serves.")
@click.option("--ip", "ip_address", default=None, help="NAS-IP-Address / source address of its packets.")
@click.option("--secret", default=None, help="RADIUS shared secret (also used for CoA/Disconnect).")
@click.option("--coa-port", type=int, default=None, help="UDP port for RFC 5176 requests.")
@click.option("--vendor", type=click.Choice(svc.NAS_VENDORS), default=None)
@message_authenticator_option(default=None)
@pass_app
def nas_set(
    app: App,
    name: str,
    hotspot: str | None,
    ip_address: str | None,
    secret: str | None,
    coa_port: int | None,
    vendor: str | None,
    require_message_authenticator: bool | None,
) -> None:
    """Change settings of a NAS (only those given). FreeRADIUS learns a new address, secret or
    Message-Authenticator requirement from `hotspotctl radius clients` and a restart.

    Example: hotspotctl nas set lobby-router --ip 10.0.0.2 --secret n3w-s3cret
    """
    given = {
        "hotspot": hotspot,
        "ip_address": ip_address,
        "secret": secret,
        "coa_port": coa_port,
        "vendor": vendor,
        "require_message_authenticator": require_message_authenticator,
    }
    changes = {setting: value for setting, value in given.items() if value is not None}
    if not changes:
        raise click.UsageError("nothing to change: give at least one option (see --help)")
    with app.transaction() as db:
        changed = svc.set_nas(db, name, **changes)
    click.echo(f"NAS {name}: " + (f"changed {', '.join(changed)}" if changed else "nothing changed"))
    if require_message_authenticator is False:
        click.echo(NO_MESSAGE_AUTHENTICATOR_WARNING.format(name=name), err=True)
    if set(svc.NAS_CLIENT_SETTINGS) & set(changed):
        click.echo("FreeRADIUS still has the old client: run `hotspotctl radius clients` and restart it")


@nas.command("remove")
@click.argument("name")
@pass_app
def nas_remove(app: App, name: str) -> None:
    """Remove a NAS nothing refers to (refused once a session went through it: history stays).

    Example: hotspotctl nas remove old-router
    """
    with app.transaction() as db:
        svc.remove_nas(db, name)
    click.echo(f"NAS {name} removed")


@nas.command("uam")
@click.argument("name")
@click.option("--secret", "uam_secret", default=None, help="CoovaChilli uamsecret (signs its redirects).")
@click.option("--login-url", default=None, help="MikroTik: the hotspot's login URL (link-login-only).")
@pass_app
def nas_uam(app: App, name: str, uam_secret: str | None, login_url: str | None) -> None:
    """Set how the portal hands a guest's credentials to this NAS (RADIUS hotspots; no option clears them).

    Example: hotspotctl nas uam lobby-chilli --secret "uam-s3cret"
    """
    with app.transaction() as db:
        set_nas_uam(db, name, uam_secret=uam_secret, uam_login_url=login_url)
    click.echo(f"NAS {name}: UAM " + ("settings cleared" if not (uam_secret or login_url) else "settings saved"))


@click.group()
def tariff() -> None:
    """Tariffs: prices per time and per traffic, with time-of-day bands."""


@tariff.command("add")
@click.argument("name")
@click.option("--per-minute", "per_minute", default=None, help="Price of one minute online, e.g. 0.05.")
@click.option("--per-hour", "per_hour", default=None, help="Price of one hour online, e.g. 1.50.")
@click.option(
    "--increment",
    default="1s",
    show_default=True,
    help="Billing increment: 1s bills per second, 1m per started minute.",
)
@click.option("--per-mb", "per_mb", default=None, help="Price of one MB of traffic (IP-layer bytes).")
@click.option(
    "--mb",
    "mb_unit",
    type=click.Choice(list(MB_UNITS)),
    default="MB",
    show_default=True,
    help="MB = 10^6 bytes, MiB = 2^20 bytes.",
)
@click.option(
    "--direction",
    type=click.Choice(["download", "upload", "total"]),
    default="total",
    show_default=True,
    help="Which traffic is billed.",
)
@click.option(
    "--band",
    "bands",
    multiple=True,
    help="Time-of-day price from a local time on, until the next band starts (across midnight): "
    "HH:MM=TIME_PRICE[/TRAFFIC_PRICE] in the same units as the base prices. Repeat for several bands; "
    "they replace the base prices round the clock.",
)
@click.option("--free-net", "free_networks", multiple=True, help="Network whose traffic is free (CIDR).")
@click.option(
    "--sim-use", "simultaneous_use", default=1, show_default=True, type=int, help="Sessions one card may have at once."
)
@click.option("--rate-up", default=None, type=int, help="Upload limit, kbit/s.")
@click.option("--rate-down", default=None, type=int, help="Download limit, kbit/s.")
@pass_app
def tariff_add(
    app: App,
    name: str,
    per_minute: str | None,
    per_hour: str | None,
    increment: str,
    per_mb: str | None,
    mb_unit: str,
    direction: str,
    bands: tuple[str, ...],
    free_networks: tuple[str, ...],
    simultaneous_use: int,
    rate_up: int | None,
    rate_down: int | None,
) -> None:
    """Add a tariff.

    Example: hotspotctl tariff add standard --per-hour 1.20 --increment 1m --band 22:00=0.60 --band 07:00=1.20
    """
    if per_minute and per_hour:
        raise click.UsageError("give --per-minute or --per-hour, not both")
    with app.transaction() as db:
        currency = app.currency(db)
        time_price = parse_amount(currency, per_minute or per_hour or "0")
        traffic_price = parse_amount(currency, per_mb or "0")
        spec = svc.TariffSpec(
            name=name,
            time_price=time_price,
            time_unit_seconds=3600 if per_hour else 60,
            time_increment_seconds=int(parse_duration(increment).total_seconds()),
            traffic_price=traffic_price,
            traffic_unit_bytes=MB_UNITS[mb_unit],
            traffic_direction=direction,
            bands=parse_bands(currency, bands, traffic_price),
            free_networks=free_networks,
            simultaneous_use=simultaneous_use,
            rate_up_kbps=rate_up,
            rate_down_kbps=rate_down,
        )
        _refuse_base_prices_never_charged(currency, spec, "--per-hour" if per_hour else "--per-minute")
        tariff_id = svc.add_tariff(db, spec)
    click.echo(f"tariff {name} added (id {tariff_id}): {_daily_prices(currency, svc.core_tariff(spec))}")


PRICE_OPTIONS = ("--per-minute", "--per-hour", "--per-mb", "--increment", "--band", "--direction", "--free-net")


@tariff.command("set", context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.option("--sim-use", "simultaneous_use", type=int, default=None, help="Sessions one card may have at once.")
@click.option("--rate-up", type=int, default=None, help="Upload limit, kbit/s (0: none).")
@click.option("--rate-down", type=int, default=None, help="Download limit, kbit/s (0: none).")
@click.argument("others", nargs=-1, type=click.UNPROCESSED)
@pass_app
def tariff_set(
    app: App,
    name: str,
    simultaneous_use: int | None,
    rate_up: int | None,
    rate_down: int | None,
    others: tuple[str, ...],
) -> None:
    """Change what a tariff allows (simultaneous use, rate limits), never what it charges.

    Sessions are billed from their cumulative counters at their tariff's prices: a price changed in place
    would re-price usage already billed. For new prices add a new tariff and move the hotspots to it
    (`hotspot set NAME --tariff NEW`): open sessions keep the tariff they started with.

    Example: hotspotctl tariff set standard --sim-use 2 --rate-down 20000
    """
    if others:
        asked = next((o for o in others if o.split("=")[0] in PRICE_OPTIONS), None)
        if asked is None:
            raise click.UsageError(f"unknown option or argument: {' '.join(others)}")
        raise click.UsageError(
            f"{asked.split('=')[0]}: a tariff's prices cannot change in place (usage already billed would be "
            f"priced again): add a new tariff (`hotspotctl tariff add {name}-2 ...`) and move the hotspots to "
            f"it (`hotspotctl hotspot set HOTSPOT --tariff {name}-2`); open sessions keep their tariff"
        )
    if simultaneous_use is None and rate_up is None and rate_down is None:
        raise click.UsageError("nothing to change: give --sim-use, --rate-up or --rate-down")
    with app.transaction() as db:
        changed = svc.set_tariff(
            db, name, simultaneous_use=simultaneous_use, rate_up_kbps=rate_up, rate_down_kbps=rate_down
        )
    click.echo(f"tariff {name}: " + (f"changed {', '.join(changed)}" if changed else "nothing changed"))


@tariff.command("remove")
@click.argument("name")
@pass_app
def tariff_remove(app: App, name: str) -> None:
    """Remove a tariff nothing refers to (no hotspot, card batch or session uses it).

    Example: hotspotctl tariff remove draft
    """
    with app.transaction() as db:
        svc.remove_tariff(db, name)
    click.echo(f"tariff {name} removed")


def _refuse_base_prices_never_charged(currency: Currency, spec: svc.TariffSpec, time_option: str) -> None:
    """A base price no band repeats is charged at no time of day (core.admin_input): say how to keep it."""
    unused = base_prices_never_charged(spec.time_price, spec.traffic_price, spec.bands)
    if not unused:
        return
    option, base, example = (
        (time_option, spec.time_price, "--band 07:00={}")
        if unused[0] == "time"
        else ("--per-mb", spec.traffic_price, "--band 07:00=TIME_PRICE/{}")
    )
    amount = currency.format(base).removesuffix(f" {currency.code}")
    raise click.UsageError(
        f"{option} {amount} would be charged at no time of day: each band runs until the next one "
        f"starts, across midnight; add a band where that price starts again, e.g. {example.format(amount)}"
    )


def _time_unit(seconds: int) -> str:
    return {3600: "hour", 60: "minute"}.get(seconds, f"{seconds} s")


def _traffic_unit(unit_bytes: int) -> str:
    return "MiB" if unit_bytes == 1_048_576 else "MB"


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _daily_prices(currency: Currency, tariff: Tariff) -> str:
    """The day's prices as an operator reads them, from midnight on:
    "22:00-07:00 0.60 EUR/hour, 07:00-22:00 1.20 EUR/hour" (a band runs until the next one starts)."""
    time_unit, traffic_unit = _time_unit(tariff.time_unit_seconds), _traffic_unit(tariff.traffic_unit_bytes)
    prices_traffic = any(band.traffic_price for band in tariff.cycle)
    periods = []
    for start, end, band in daily_cycle(tariff):
        prices = [f"{currency.format(band.time_price)}/{time_unit}"] if not tariff.time_is_free else []
        prices += [f"{currency.format(band.traffic_price)}/{traffic_unit}"] if prices_traffic else []
        when = "all day" if start == end else f"{_clock(start)}-{_clock(end or 24 * 60)}"
        periods.append(f"{when} {' + '.join(prices)}")
    return ", ".join(periods)


def _describe(currency: Currency, stored: svc.StoredTariff) -> dict[str, object]:
    spec = stored.spec
    return {
        "name": spec.name,
        "time_price": f"{currency.format(spec.time_price)}/{_time_unit(spec.time_unit_seconds)}",
        "increment_s": spec.time_increment_seconds,
        "traffic_price": f"{currency.format(spec.traffic_price)}/{_traffic_unit(spec.traffic_unit_bytes)} "
        f"{spec.traffic_direction}",
        "daily_prices": _daily_prices(currency, stored.tariff),
        "free_networks": " ".join(spec.free_networks),
        "sim_use": spec.simultaneous_use,
        "rate_up_kbps": spec.rate_up_kbps,
        "rate_down_kbps": spec.rate_down_kbps,
    }


@tariff.command("list")
@format_option
@pass_app
def tariff_list(app: App, fmt: str) -> None:
    """List tariffs with their prices.

    Example: hotspotctl tariff list
    """
    with app.transaction() as db:
        currency = app.currency(db)
        rows = [{"id": t.id, **_describe(currency, t)} for t in svc.list_tariffs(db)]
    emit(rows, fmt)


@tariff.command("show")
@click.argument("name")
@click.option("--balance", default=None, help="Also show what this balance buys now (default: 10 units).")
@click.option("--timezone", default="UTC", show_default=True, help="Local time zone for the price bands.")
@pass_app
def tariff_show(app: App, name: str, balance: str | None, timezone: str) -> None:
    """Show one tariff and what a balance buys if used from now on.

    Example: hotspotctl tariff show standard --balance 5.00 --timezone Europe/Moscow
    """
    now = app.now()
    with app.transaction() as db:
        currency = app.currency(db)
        stored = svc.get_tariff(db, name)
        amount = parse_amount(currency, balance) if balance else 10 * 10**currency.exponent
    for key, value in _describe(currency, stored).items():
        click.echo(f"{key:>15}: {'' if value is None else value}")
    tz = ZoneInfo(timezone)
    seconds = seconds_affordable(stored.tariff, tz, now, Meter(), amount, horizon=366 * 86400)
    data = bytes_affordable(stored.tariff, tz, now, Meter(), amount)
    click.echo(
        f"{currency.format(amount)} from now buys: "
        f"{'unlimited time' if seconds >= 366 * 86400 else _duration(seconds)} online, "
        f"{'unlimited' if data is None else f'{data:,} bytes'} of traffic"
    )


def _duration(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return (f"{days}d " if days else "") + f"{hours:02d}:{minutes:02d}:{secs:02d}"
