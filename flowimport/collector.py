"""The nfacctd configuration and pre_tag_map for one hotspot, so operators never hand-write pmacct syntax.

The shapes follow the verified recipe of Debian 12's pmacct 1.7.7 (docs/netflow.md): two print plugins
(download = client is the destination, upload = client is the source), a pre_tag_map that tags free
traffic 1 and billable traffic 2, one JSON file per minute bin and direction, flushed with purge markers.
The memory-plugin variant serves `pmacct -s -e` polling instead of files.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from rlm_hotspot.core.networks import IPNetwork, parse_networks

FREE_TAG = 1
BILLABLE_TAG = 2
DIRECTIONS = ("down", "up")
# Sized so that 1 000+ clients at 60 k flows/s lose nothing (the 1.7.7 defaults lost 31 %).
MEMORY_TABLE = {"imt_buckets": "65537", "imt_mem_pools_number": "64", "imt_mem_pools_size": "1048576"}


class CollectorConfigError(ValueError):
    """A collector setting that nfacctd would misread or silently ignore; the message says which."""


@dataclass(frozen=True)
class CollectorSpec:
    """What the operator tells `hotspotctl flows config`, already validated."""

    client_networks: tuple[IPNetwork, ...]
    free_networks: tuple[IPNetwork, ...]
    listen_ip: str
    listen_port: int
    spool: Path
    config_dir: Path
    bin_minutes: int = 1
    source: str = "print"

    @property
    def excluded_hosts(self) -> tuple[IPNetwork, ...]:
        """Free networks inside a client pool (the gateway, the portal): never counted as a guest."""
        return tuple(
            free
            for free in self.free_networks
            # subnet_of takes a network of its own version only, as the test before it checks
            if any(free.version == pool.version and free.subnet_of(pool) for pool in self.client_networks)  # type: ignore[arg-type]
        )



def memory_pipes(config_dir: Path) -> dict[str, Path]:
    """Where each direction's memory plugin answers `pmacct` queries (source=memory)."""
    return {direction: config_dir / f"{direction}.pipe" for direction in DIRECTIONS}


def parse_collector(text: str) -> tuple[str, int]:
    """'0.0.0.0:2100' or '[::]:2100' → (ip, port), with a clear error for anything else."""
    host, sep, port_text = text.strip().rpartition(":")
    host = host.strip("[]")
    try:
        address = ipaddress.ip_address(host)
        port = int(port_text)
    except ValueError:
        raise CollectorConfigError(f"bad collector {text!r}: use IP:PORT, e.g. 0.0.0.0:2100") from None
    if not sep or not 1 <= port <= 65535:
        raise CollectorConfigError(f"bad collector {text!r}: the port must be 1..65535")
    return str(address), port


def build_spec(
    *,
    client_networks: list[str],
    free_networks: list[str],
    collector: str,
    spool: Path,
    config_dir: Path,
    bin_minutes: int = 1,
    source: str = "print",
) -> CollectorSpec:
    """Validate the operator's settings (CIDR syntax, port, bin length) into a spec."""
    try:
        clients = parse_networks(client_networks)
        free = parse_networks(free_networks)
    except ValueError as exc:
        raise CollectorConfigError(str(exc)) from None
    if not clients:
        raise CollectorConfigError("give at least one client network (--client-net), e.g. 10.1.0.0/16")
    if bin_minutes < 1:
        raise CollectorConfigError("the bin must be a whole number of minutes (pmacct ignores anything else)")
    if source not in ("print", "memory"):
        raise CollectorConfigError("the source must be print (spool files) or memory (pmacct client)")
    ip, port = parse_collector(collector)
    return CollectorSpec(clients, tuple(dict.fromkeys(free)), ip, port, spool, config_dir, bin_minutes, source)


def _any_net(networks: tuple[IPNetwork, ...], side: str) -> str:
    terms = [f"{side} net {network}" for network in networks]
    return terms[0] if len(terms) == 1 else "(" + " or ".join(terms) + ")"


def _client_filter(spec: CollectorSpec, side: str) -> str:
    """BPF selecting packets whose `side` (src/dst) is a guest: in a pool, not the gateway or portal."""
    clients = _any_net(spec.client_networks, side)
    if not spec.excluded_hosts:
        return clients
    return f"{clients} and not {_any_net(spec.excluded_hosts, side)}"


def render_pretag_map(spec: CollectorSpec) -> str:
    """Tag 1 (free): free networks either way and client-to-client; tag 2 (billable): every other IP packet."""
    lines = ["! pre_tag_map written by `hotspotctl flows config`: first match wins, 1 = free, 2 = billable"]
    lines += [f"set_tag={FREE_TAG} filter='net {network}'" for network in spec.free_networks]
    lines.append(
        f"set_tag={FREE_TAG} filter='{_any_net(spec.client_networks, 'src')} and "
        f"{_any_net(spec.client_networks, 'dst')}'"
    )
    lines.append(f"set_tag={BILLABLE_TAG} filter='ip or ip6'")
    return "\n".join(lines) + "\n"


def render_nfacctd_conf(spec: CollectorSpec) -> str:
    """nfacctd.conf for Debian's pmacct 1.7.7 (comments only on their own lines)."""
    names = {"down": ("dst_host", "dst"), "up": ("src_host", "src")}
    kind = "print" if spec.source == "print" else "memory"
    lines = [
        "! nfacctd.conf written by `hotspotctl flows config`; regenerate instead of editing",
        "daemonize: false",
        f"pidfile: {spec.config_dir / 'nfacctd.pid'}",
        f"nfacctd_ip: {spec.listen_ip}",
        f"nfacctd_port: {spec.listen_port}",
        "nfacctd_time_new: true",
        "timestamps_utc: true",
        "timestamps_since_epoch: true",
        f"pre_tag_map: {spec.config_dir / 'pretag.map'}",
        "maps_refresh: true",
        "! leave plugin_buffer_size at its default: records would reach the plugins only when a buffer fills",
        "plugin_pipe_size: 10240000",
        f"plugins: {kind}[down], {kind}[up]",
    ]
    for direction in DIRECTIONS:
        primitive, side = names[direction]
        lines += [
            f"aggregate[{direction}]: {primitive}, tag",
            f"aggregate_filter[{direction}]: {_client_filter(spec, side)}",
        ]
    if spec.source == "print":
        minutes = spec.bin_minutes
        lines += [
            "print_output: json",
            "print_markers: true",
            f"print_history: {minutes}m",
            "print_history_roundoff: m",
            f"print_refresh_time: {minutes * 60}",
            "print_output_file_append: true",
            "files_umask: 077",
        ]
        lines += [
            f"print_output_file[{direction}]: {spec.spool / direction}-%Y%m%d-%H%M%S.json" for direction in DIRECTIONS
        ]
    else:
        lines += [f"imt_path[{direction}]: {pipe}" for direction, pipe in memory_pipes(spec.config_dir).items()]
        lines += [f"{key}: {value}" for key, value in MEMORY_TABLE.items()]
    return "\n".join(lines) + "\n"


def write_collector_files(spec: CollectorSpec) -> list[Path]:
    """Write nfacctd.conf and pretag.map into the config directory and pre-create the spool.

    The spool is created here because two print plugins creating it at once race and lose a purge.
    """
    spec.config_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, body in (("nfacctd.conf", render_nfacctd_conf(spec)), ("pretag.map", render_pretag_map(spec))):
        path = spec.config_dir / name
        temporary = path.with_suffix(path.suffix + ".tmp")
        temporary.write_text(body)
        temporary.replace(path)
        written.append(path)
    (spec.spool / "done").mkdir(parents=True, exist_ok=True)
    return written
