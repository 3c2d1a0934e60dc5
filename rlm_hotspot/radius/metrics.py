"""Prometheus metrics of the FreeRADIUS module, served from inside radiusd.

radiusd has no port of ours, so the module serves its own: prometheus_client's HTTP server on a daemon
thread started when radiusd instantiates the module (never under `radiusd -C`, which ExecStartPre and
ExecReload run next to the live server). The thread takes the GIL only while it answers a scrape: rlm_python3
releases it between hook calls, and a hook in progress yields it every few milliseconds. The counters live
in the one interpreter radiusd embeds (one python3 instance, every radiusd thread calls into it), so a
restart starts them from zero, as Prometheus expects of any process; nothing is left on disk. Why not
prometheus_client's multiprocess files served by another process: a directory freerad must be able to
write, files that outlive every restart, and one more unit to run, for no gain (docs/radius.md, "Metrics").

With buffered accounting the backlog is read from the buffer's files when Prometheus scrapes, never in a
hook: what waits there (files, bytes) and the age of the oldest entry not known to be billed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# radiusd's options that take a value (getopt "Cd:D:fhi:l:mMn:p:PstTvxX" in FreeRADIUS 3.2)
RADIUSD_OPTIONS_WITH_VALUE = frozenset("dDilnp")
HOOK_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# how far into a buffer file the first entry's `Timestamp = <epoch>` line is looked for (an entry is < 4 KiB)
ENTRY_HEAD_BYTES = 64 * 1024
_TIMESTAMP = re.compile(rb"^\tTimestamp = (\d+)$", re.MULTILINE)


class RadiusMetrics:
    """What the module's hooks did; with `buffer_file`, also what waits in the accounting buffer."""

    def __init__(self, buffer_file: Path | None = None) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "hotspot_radius_requests", "Hook calls, by hook (authorize, accounting) and outcome (authorize: "
            "checked, accept, reject, fail; accounting: ok, fail).", ["hook", "outcome"], registry=self.registry,
        )  # fmt: skip
        self.refusals = Counter(
            "hotspot_radius_refusals", "Logins refused, by reason (wrong_pin, unknown_card, locked_out, ..., "
            "malformed_request, unknown_nas).", ["reason"], registry=self.registry,
        )  # fmt: skip
        self.errors = Counter(
            "hotspot_radius_errors", "Hook calls answered FAIL, by hook and kind (database_unavailable, "
            "database_error, login_call_failed, pin_key, unexpected).", ["hook", "kind"], registry=self.registry,
        )  # fmt: skip
        self.hook_seconds = Histogram(
            "hotspot_radius_hook_seconds", "Time in one hook call (radiusd runs them one at a time).", ["hook"],
            registry=self.registry, buckets=HOOK_BUCKETS,
        )  # fmt: skip
        self.unbilled = Counter(
            "hotspot_radius_accounting_unbilled", "Accounting packets acknowledged but not billed, by reason "
            "(malformed, refused).", ["reason"], registry=self.registry,
        )  # fmt: skip
        self.held = Counter(
            "hotspot_radius_accounting_held", "Usage accounting packets reported beyond the bounds, held in the "
            "quarantine, by quantity and reason.", ["quantity", "reason"], registry=self.registry,
        )  # fmt: skip
        if buffer_file is not None:
            self.registry.register(BufferCollector(buffer_file))


@dataclass(frozen=True)
class Backlog:
    """What the detail reader has still to bill."""

    files: int
    bytes: int
    oldest_age_s: float  # 0 when nothing waits


def buffer_backlog(buffer_file: Path, now: float) -> Backlog:
    """The backlog of the accounting buffer at `now` (epoch seconds).

    The writer appends to `buffer_file`; `hotspotctl radius import` renames it to `<name>.<ns>.work`, bills it
    and deletes it when every entry is billed (`<name>.work`: left by the retired hotspot-buffer server, billed
    first).
    So the oldest entry not known to be billed is the first of the oldest work file (or of the buffer when
    there is none): its age bounds the billing lag from above.
    """
    files = sizes = 0
    oldest: int | None = None
    work_files = sorted(buffer_file.parent.glob(f"{buffer_file.name}.*.work"))
    for path in (buffer_file.with_name(buffer_file.name + ".work"), *work_files, buffer_file):
        try:
            with path.open("rb") as opened:
                size = path.stat().st_size
                head = opened.read(ENTRY_HEAD_BYTES) if oldest is None else b""
        except FileNotFoundError:  # not written yet, or deleted by the reader while we looked
            continue
        files, sizes = files + 1, sizes + size
        if (found := _TIMESTAMP.search(head)) is not None:
            oldest = int(found.group(1))
    return Backlog(files, sizes, max(0.0, now - oldest) if oldest is not None and sizes else 0.0)


class BufferCollector(Collector):
    """The accounting buffer's backlog, read from its files at every scrape."""

    def __init__(
        self, buffer_file: Path, clock: Callable[[], float] = time.time, prefix: str = "hotspot_radius_buffer"
    ) -> None:
        self.buffer_file = buffer_file
        self.clock = clock
        self.prefix = prefix  # the module's `hotspot_radius_buffer`, the importer's `hotspot_radius_import_backlog`

    def collect(self) -> Iterator[Metric]:
        backlog = buffer_backlog(self.buffer_file, self.clock())
        for name, doc, value in (
            (f"{self.prefix}_files", "Accounting buffer files waiting to be billed.", backlog.files),
            (f"{self.prefix}_bytes", "Bytes in the accounting buffer's files.", backlog.bytes),
            (
                f"{self.prefix}_oldest_age_seconds",
                "Age of the oldest buffered accounting entry not known to be billed (0: none waits).",
                backlog.oldest_age_s,
            ),
        ):
            yield GaugeMetricFamily(name, doc, value=value)


def checking_config(argv: Sequence[str]) -> bool:
    """True when radiusd was started as `radiusd -C` (ExecStartPre, ExecReload): it instantiates the module
    while the live server runs, and must not take its port."""
    args = iter(argv[1:])
    for arg in args:
        if arg == "--":
            break
        if not arg.startswith("-") or arg == "-":
            continue
        for position, flag in enumerate(arg[1:], start=2):
            if flag == "C":
                return True
            if flag in RADIUSD_OPTIONS_WITH_VALUE:
                if position == len(arg):  # `-d dir`: the value is the next argument
                    next(args, None)
                break
    return False


def process_argv() -> list[str]:
    """This process's command line (radiusd's: the embedded interpreter's sys.argv is empty)."""
    raw = Path("/proc/self/cmdline").read_bytes()
    return [part.decode(errors="surrogateescape") for part in raw.split(b"\0") if part]
