"""The one importer pattern: what the NetFlow importer (`flowimport`) and the accounting importer
(`rlm_hotspot.radius.importer`) do alike, written once.

A writer that never waits for the database (nfacctd, radiusd's `detail` module) appends to a spool; one
importer process per spool bills it in batches:

1. **find** a spool unit: a settled nfacctd file; radiusd's detail file, claimed by a rename and a lock;
2. **parse** it into batches, each named by where it lies in its unit (a file's purge block and its digest;
   a file's byte range);
3. **bill** a batch and **record** its name in the same transaction (`flow_batches`, `radius_batches`): the
   record is the exactly-once gate, so after a crash the unit resumes right after its last committed batch;
4. **retire** the unit once all of it is committed (moved to done/; deleted).

What differs (how a unit is found, how it is parsed, how a batch is billed) stays in each importer. What is
the same idea lives here: the loop (`run_loop`: a pass, a pause, `--once`, the database waited out with a
backoff), the process around it (`importer_process`: its engine; `run_service`: its metrics served, SIGTERM)
and the metrics' registry (`ImporterMetrics`).
"""

from __future__ import annotations

import logging
import math
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol, TypeVar

from prometheus_client import CollectorRegistry, start_http_server, write_to_textfile
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from rlm_hotspot import logs
from rlm_hotspot.db.engine import make_engine, session_factory
from rlm_hotspot.logs import first_line
from rlm_hotspot.settings import Settings, with_overrides

log = logging.getLogger(__name__)

#: The database is down, unreachable or timed out: nothing of the pass was committed, the same is retried.
UNAVAILABLE = (OperationalError, InterfaceError)
#: A batch is one long transaction (20,000 sessions of flows, 2,000 packets): the interactive 3 s is too tight.
IMPORT_STATEMENT_TIMEOUT_MS = 60_000
#: While the database stays down, the pause between passes doubles from the idle pause up to this (or the
#: idle pause, if longer): a short poll does not hammer a database that is starting, nor fill the log.
MAX_BACKOFF_S = 5.0
MIN_BACKOFF_S = 0.1


class PassReport(Protocol):
    """What the loop needs to know of a pass."""

    @property
    def busy(self) -> bool:
        """More may be waiting: pass again at once."""

    @property
    def database_down(self) -> bool:
        """The database could not be used: nothing was committed, the same is tried again after a backoff."""


Report = TypeVar("Report", bound=PassReport)
Outcome_co = TypeVar("Outcome_co", covariant=True)
Outcome = TypeVar("Outcome")


def backoff(idle_pause: float, failures: int) -> float:
    """The pause after `failures` passes in a row found the database down (0: the idle pause)."""
    if failures == 0:
        return idle_pause
    first = max(idle_pause, MIN_BACKOFF_S)
    return min(first * 2.0 ** min(failures - 1, 16), max(idle_pause, MAX_BACKOFF_S))


def run_loop(
    one_pass: Callable[[], Report],
    unavailable: Callable[[Exception], Report] | None = None,
    *,
    stopping: threading.Event,
    idle_pause: float,
    once: bool = False,
    keep_up: Callable[[], None] | None = None,
) -> Report:
    """Run passes until `stopping` is set (one with `once`); returns the last pass's report.

    A pass that raises an `UNAVAILABLE` error is handed to `unavailable` (which counts it and returns the
    pass's report) and retried after the backoff; with `once` the error is raised once it was counted. Without
    `unavailable`, the pass contains such errors itself and says so in its report (`database_down`).
    `keep_up` is what needs no database and must keep the idle pause's pace while a backoff is waited out
    (the accounting importer's fdatasync of radiusd's live file)."""
    failures = 0
    while True:
        try:
            report = one_pass()
        except UNAVAILABLE as exc:
            if unavailable is None:
                raise
            report = unavailable(exc)
            retry = "" if once else f", retrying in {backoff(idle_pause, failures + 1):.1f} s"
            log.error("database unavailable%s: %s", retry, first_line(exc))
            if once:
                raise
        failures = failures + 1 if report.database_down else 0
        if once or _wait(stopping, 0 if report.busy else backoff(idle_pause, failures), idle_pause, keep_up):
            return report


def _wait(stopping: threading.Event, pause: float, idle_pause: float, keep_up: Callable[[], None] | None) -> bool:
    """Wait `pause` unless stopped (True: stopped); a pause longer than the idle one in slices of about the idle
    one, with `keep_up` after each."""
    step = max(idle_pause, MIN_BACKOFF_S)
    if keep_up is None or pause <= step:
        return stopping.wait(pause)
    slices = math.ceil(pause / step)
    for _ in range(slices):
        if stopping.wait(pause / slices):
            return True
        keep_up()
    return False


class Importer(Protocol[Outcome_co]):
    """An importer as its service runs it: its stop, its metrics and its loop (`run_loop` inside)."""

    @property
    def stopping(self) -> threading.Event: ...

    @property
    def metrics(self) -> ImporterMetrics: ...

    def run(self, *, once: bool = False) -> Outcome_co: ...


def run_service(importer: Importer[Outcome], *, once: bool, metrics_port: int | None, metrics_address: str) -> Outcome:
    """Run an importer as its systemd service does: its metrics served on `metrics_port` (None or 0: not
    served), SIGTERM (systemd) and SIGINT (a terminal) setting `stopping`: the loop ends after the current pass,
    or sooner where the pass checks it between batches (the accounting importer: a backlog is one long pass),
    never mid-batch."""
    if metrics_port:
        importer.metrics.serve(metrics_port, metrics_address)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: importer.stopping.set())
    return importer.run(once=once)


@contextmanager
def importer_process(settings: Settings, application_name: str) -> Iterator[sessionmaker[Session]]:
    """An importer service's database: one connection of its own, named for pg_stat_activity, with a statement
    timeout long enough for a batch; disposed of when the service ends."""
    logs.setup()  # unless the CLI's --log-format did already
    timeout_ms = max(settings.statement_timeout_ms, IMPORT_STATEMENT_TIMEOUT_MS)
    engine = make_engine(
        with_overrides(settings, statement_timeout_ms=timeout_ms), pool_size=1, application_name=application_name
    )
    try:
        yield session_factory(engine)
    finally:
        engine.dispose()


class ImporterMetrics:
    """An importer's own Prometheus registry (tests run several importers in one interpreter), served over
    HTTP from a daemon thread or written as a node_exporter textfile."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()

    def serve(self, port: int, address: str = "127.0.0.1") -> None:
        """Expose /metrics on `address:port` from a background thread."""
        start_http_server(port, addr=address, registry=self.registry)

    def write_textfile(self, path: Path) -> None:
        """Atomically rewrite a node_exporter textfile."""
        write_to_textfile(str(path), self.registry)
