"""The accounting importer (`hotspotctl radius import`): bills the detail file radiusd writes, in batches.

radiusd writes each Accounting-Request to `<spool>/buffer.detail` with its own `detail` module (locked,
in order) and answers the NAS; billing is no longer done one packet at a time inside the serialized
python3 module. This process, one per spool:

1. **Claims** the file: renames it to `buffer.detail.<ns>.work` and locks it until it is deleted, so a
   writer that was appending finishes first and every later one opens a new `buffer.detail` (radiusd's
   writers lock without waiting and reopen the name when the lock is taken, as for FreeRADIUS's own detail
   reader; one that still holds the old file finds it deleted and reopens too).
2. **Bills** the work file's complete entries in batches of at most `batch_size`, one transaction each,
   through the same rules as the hook (`radius.accounting.bill_packet`); the batch (file, byte range) is
   recorded in that transaction (sql/025), so after a crash — kill -9 at any instant — the file resumes
   right after its last committed batch: nothing billed twice, nothing skipped. The file is read a piece
   (`piece_bytes`) at a time, so memory is bounded by a piece and a batch whatever the backlog (a day of
   outage is gigabytes), and a stop (SIGTERM) ends the pass after the batch being committed.
3. **Deletes** the work file once every entry is committed. A torn last entry (radiusd died while
   writing it: it was never answered, the NAS sends it again) is logged and not billed.

radiusd never syncs the file; the importer fdatasyncs the live one at each poll (and a claimed one as it takes
it), so a power cut of the host loses at most what was answered since the last poll, even while the database
is down or a backlog is billed.

A `buffer.detail.work` left by the retired hotspot-buffer server (an upgrade) is billed first, like a claimed
file: the entries that server had billed already restate what is billed (a Start of an open session, the
cumulative counters of an Interim or Stop), so they charge nothing again. The batches of files long deleted
are pruned (`keep_batches`): they only guard the resumption of files that still exist.

One bad packet never stops the others: a malformed or unattributable one is acknowledged and logged as the
hook does; a batch that fails on a database error (not an outage) is billed again packet by packet, each in
a savepoint, and a packet that still fails is logged and skipped. While the database is down nothing is
deleted and the same batch is tried again, after a backoff: the loop, its backoff and the process around it
are the importer pattern the NetFlow importer runs too (`rlm_hotspot.spool_importer`).
"""

from __future__ import annotations

import fcntl
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from rlm_hotspot.clock import utc_now
from rlm_hotspot.db import radius_batches
from rlm_hotspot.logs import first_line
from rlm_hotspot.radius.accounting import BatchConflict, BatchTimings, PacketOutcome, bill_batch, bill_packet
from rlm_hotspot.radius.detail import PIECE_BYTES, Entry, Parsed, pieces
from rlm_hotspot.radius.import_metrics import ImportMetrics
from rlm_hotspot.services.tariff_cache import NasCache, TariffCache
from rlm_hotspot.settings import Settings
from rlm_hotspot.spool_importer import UNAVAILABLE, importer_process, run_loop, run_service

log = logging.getLogger(__name__)

LIVE = "buffer.detail"  # what radiusd's hotspot_buffer module appends to
WORK_GLOB = "buffer.detail.*.work"
LEGACY_WORK = "buffer.detail.work"  # the retired hotspot-buffer server's work file, left by an upgrade
#: How long the batches of a deleted file are kept (a finished file is never read again).
KEEP_BATCHES = timedelta(days=30)
PRUNE_INTERVAL_S = 3600.0
#: Packets billed per transaction at most: a backlog is caught up in large batches, a trickle in small ones.
BATCH_SIZE = 2000
#: radiusd writes an entry before the importer reads it, on this host: a receive time later than the read by
#: more than a clock step's slack is no radiusd's (a restored or edited spool) and is not billed — billed at it,
#: an Interim "began" after its session's last packet and opened a second session that charged it again.
FUTURE_SLACK = timedelta(seconds=10)


@dataclass
class ImportReport:
    """What a pass did."""

    files: int = 0
    batches: int = 0
    packets: int = 0
    unbilled: int = 0
    held: int = 0
    torn: int = 0
    failed_packets: int = 0
    database_down: bool = False
    stopped: bool = False  # told to stop (SIGTERM) before its files were all billed: they wait for the next start

    @property
    def busy(self) -> bool:
        """Packets came: more may be waiting, the next pass starts at once."""
        return self.packets > 0


@dataclass
class AccountingImporter:
    """Bills one spool directory's detail files; `run` loops until `stopping` is set."""

    spool: Path
    sessions: sessionmaker[Session]
    batch_size: int = BATCH_SIZE
    piece_bytes: int = PIECE_BYTES  # read and parsed at a time: memory is bounded by it and the batch, not the file
    poll_interval: float = 0.2
    host: str = field(default_factory=socket.gethostname)
    stopping: threading.Event = field(default_factory=threading.Event)
    tariffs: TariffCache = field(default_factory=TariffCache)
    nas: NasCache = field(default_factory=NasCache)
    keep_batches: timedelta = KEEP_BATCHES
    metrics: ImportMetrics = field(init=False)
    _pruned_at: float | None = field(default=None, init=False)
    _idle_since: float = field(default_factory=time.perf_counter, init=False)  # the last commit (or the start)
    _synced_at: float = field(default=-math.inf, init=False)  # the live file's last fdatasync (monotonic)
    _synced_inode: int | None = field(default=None, init=False)  # whose directory entry was synced too

    def __post_init__(self) -> None:
        self.metrics = ImportMetrics(self.spool / LIVE)

    def run(self, *, once: bool = False) -> ImportReport:
        """Bill what arrives until stopped (one pass with `once`); the database being down is waited out."""
        return run_loop(self._pass, self._unavailable, stopping=self.stopping, idle_pause=self.poll_interval,
                        once=once, keep_up=self._sync_live)  # fmt: skip

    def _pass(self) -> ImportReport:
        self._sync_live()
        return self.import_pending()

    def _unavailable(self, _exc: Exception) -> ImportReport:
        """Counted for HotspotRadiusImportDatabaseErrors; the loop logs it and bills the same again."""
        self.metrics.errors.labels("unavailable").inc()
        return ImportReport(database_down=True)

    def import_pending(self) -> ImportReport:
        """Bill every work file (oldest first), then claim and bill the live file."""
        report = ImportReport()
        for work in self._work_files() or self._claim():
            self._import_file(work, report)
            if report.stopped:
                break
        self._prune_now_and_then()
        return report

    def _sync_live(self) -> None:
        """fdatasync radiusd's live file, at most once a poll interval: radiusd answers without syncing (3.2.1
        has no option for it), so a power cut would lose up to ~35 s of answered entries the kernel had not
        written back; synced here, only what was answered since the last poll, even while the database is
        down or a backlog is billed. The answers never wait for it (another process). A new file's directory
        entry is synced once too."""
        now = time.monotonic()
        if now - self._synced_at < self.poll_interval:
            return
        self._synced_at = now
        try:
            fd = os.open(self.spool / LIVE, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            stat = os.fstat(fd)
            os.fdatasync(fd)
        finally:
            os.close(fd)
        if stat.st_ino != self._synced_inode:
            spool = os.open(self.spool, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(spool)
            finally:
                os.close(spool)
            self._synced_inode = stat.st_ino
        self.metrics.synced_bytes.set(stat.st_size)

    def _work_files(self) -> list[Path]:
        legacy = self.spool / LEGACY_WORK
        return ([legacy] if legacy.exists() else []) + sorted(self.spool.glob(WORK_GLOB))

    def _file_name(self, work: Path) -> str:
        """A work file's name in radius_batches: unique per host and file."""
        return f"{self.host}:{work}"

    def _prune_now_and_then(self) -> None:
        """Delete the batches of files gone for `keep_batches` (at start, then hourly)."""
        now = time.monotonic()
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_INTERVAL_S:
            return
        existing = {self._file_name(work) for work in self._work_files()}
        with self.sessions() as db, db.begin():
            pruned = radius_batches.prune(db, f"{self.host}:", utc_now() - self.keep_batches, existing)
        self._pruned_at = now
        self.metrics.pruned.inc(pruned)
        if pruned:
            log.info("accounting import: pruned %d batches of files deleted over %s ago", pruned, self.keep_batches)

    def _claim(self) -> list[Path]:
        live = self.spool / LIVE
        try:
            if live.stat().st_size == 0:
                return []
        except FileNotFoundError:
            return []
        work = self.spool / f"{LIVE}.{time.time_ns():020d}.work"
        os.rename(live, work)
        return [work]

    def _import_file(self, work: Path, report: ImportReport) -> None:
        name = self._file_name(work)
        try:
            file = work.open("r+b")
        except FileNotFoundError:  # billed and deleted by another importer of the spool meanwhile
            return
        with file:
            # radiusd's writers lock the file without waiting: one that finds it locked reopens the live name,
            # so holding the lock until the file is gone keeps every later write out of it (FreeRADIUS's own
            # detail reader does the same); taking it waits for a write under way
            opened = time.perf_counter()
            fcntl.lockf(file, fcntl.LOCK_EX)
            locked = time.perf_counter()
            if os.fstat(file.fileno()).st_nlink == 0:  # its holder billed and deleted it while we waited
                return
            os.fdatasync(file.fileno())  # what was written since the live file's last sync: complete now
            size = os.fstat(file.fileno()).st_size  # no writer appends to it any more: it is locked
            with self.sessions() as db, db.begin():
                offset = radius_batches.billed_up_to(db, name)
            log.debug(
                "accounting import: %s: %d bytes from byte %d; %.1f ms since the last commit, lock %.1f ms, resume "
                "point %.1f ms",
                work, size - offset, offset, (opened - self._idle_since) * 1e3, (locked - opened) * 1e3,
                (time.perf_counter() - locked) * 1e3,
            )  # fmt: skip
            end_byte = offset
            batch: list[Entry] = []
            for parsed in pieces(file, offset, self.piece_bytes):
                self._log_oddities(work, parsed, report)
                end_byte = parsed.end_byte
                for entry in parsed.entries:
                    batch.append(entry)
                    if len(batch) == self.batch_size:
                        if not self._bill_unless_stopping(work, name, batch, report):
                            return
                        batch = []
            if batch and not self._bill_unless_stopping(work, name, batch, report):
                return
            if end_byte < size:
                self._torn(report, "%s ends in a torn entry (%d bytes at %d, radiusd stopped while writing it): not "
                           "billed; the NAS was not answered and sends it again",
                           work, size - end_byte, end_byte)  # fmt: skip
            work.unlink()  # under the lock: a writer that still holds the file finds it deleted and reopens
        report.files += 1

    def _bill_unless_stopping(self, work: Path, name: str, batch: Sequence[Entry], report: ImportReport) -> bool:
        """Bill the next batch of a file, unless told to stop (SIGTERM; False): a backlog is one long pass, so
        the stop does not wait for it; the next start resumes the file at this batch."""
        if self.stopping.is_set():
            report.stopped = True
            log.info("accounting import: stopping; %s waits for the next start from byte %d", work, batch[0].first_byte)
            return False
        self._import_batch(name, batch, report)
        self._sync_live()  # a backlog billed batch after batch is a long pass: keep the bound
        return True

    def _log_oddities(self, work: Path, parsed: Parsed, report: ImportReport) -> None:
        """Say what a piece of the file holds that is not billed: lines that are no attribute, torn entries."""
        skipped = sum(entry.skipped_lines for entry in parsed.entries)
        if skipped:
            log.warning("accounting import: %s: lines that are no attribute skipped: %d", work, skipped)
        for first_byte, end_byte in parsed.torn:
            self._torn(report, "%s has a torn entry (%d bytes at %d) followed by whole ones: the file was cut short "
                       "(a power cut: radiusd does not fsync it) and radiusd appended to it; not billed",
                       work, end_byte - first_byte, first_byte)  # fmt: skip

    def _torn(self, report: ImportReport, message: str, *args: object) -> None:
        """An entry left unbilled because it is torn: counted, and logged with why."""
        report.torn += 1
        self.metrics.torn.inc()
        log.warning("accounting import: " + message, *args)

    def _import_batch(self, name: str, entries: Sequence[Entry], report: ImportReport) -> None:
        started, mode, timings = time.perf_counter(), "batch", _Timings()
        try:
            outcomes = self._bill(name, entries, timings, isolated=False)
        except UNAVAILABLE:
            raise
        except (DBAPIError, BatchConflict) as exc:  # one packet the database refuses must not stall the rest
            why = first_line(exc) if isinstance(exc, DBAPIError) else str(exc)
            if isinstance(exc, DBAPIError):
                self.metrics.errors.labels("refused").inc()
            log.warning("accounting import: billing the batch at %s:%d packet by packet: %s",
                        name, entries[0].first_byte, why)  # fmt: skip
            timings, mode = _Timings(), "isolated"  # the failed attempt's time shows in the batch's total only
            outcomes = self._bill(name, entries, timings, isolated=True)
        self._idle_since = time.perf_counter()
        elapsed = self._idle_since - started
        self.metrics.batch_seconds.observe(elapsed)
        self.metrics.batches.labels(mode).inc()
        self._report_timings(name, entries, mode, timings, elapsed)
        report.batches += 1
        for entry, outcome in zip(entries, outcomes, strict=True):
            report.packets += 1
            if outcome is None:
                report.failed_packets += 1
                self.metrics.packets.labels("refused").inc()
                continue
            if outcome.unbilled is not None:
                report.unbilled += 1
            self.metrics.packets.labels("billed" if outcome.unbilled is None else "unbilled").inc()
            held = len(outcome.result.held) if outcome.result else 0
            report.held += held
            self.metrics.held.inc(held)
            for error, line in outcome.log_lines():
                log.log(logging.ERROR if error else logging.WARNING, "%s (%s, byte %d)", line, name, entry.first_byte)

    def _report_timings(
        self, name: str, entries: Sequence[Entry], mode: str, timings: _Timings, elapsed: float
    ) -> None:
        phases = {"read": timings.read, "plan": timings.plan, "write": timings.write, "single": timings.single,
                  "record": timings.record, "commit": timings.commit}  # fmt: skip
        for phase, seconds in phases.items():
            self.metrics.phase_seconds.labels(phase).inc(seconds)
        if not log.isEnabledFor(logging.DEBUG):  # once per batch: the line's text is only built for --verbose
            return
        log.debug(
            "accounting import: batch %s:%d, %d packets (%s) in %.1f ms: %s",
            name, entries[0].first_byte, len(entries), mode, elapsed * 1e3,
            ", ".join(f"{phase} {seconds * 1e3:.1f}" for phase, seconds in phases.items()),
        )  # fmt: skip

    def _bill(
        self, name: str, entries: Sequence[Entry], timings: _Timings, *, isolated: bool
    ) -> Sequence[PacketOutcome | None]:
        """Bill the entries and record the batch in one transaction: all together (`bill_batch`), or `isolated`,
        each packet in a savepoint of its own, where one the database refuses is logged and left out (None)."""
        with self.sessions() as db:
            with db.begin():
                outcomes: Sequence[PacketOutcome | None]
                if isolated:
                    with timings.timing("single"):
                        outcomes = [self._bill_alone(db, name, entry) for entry in entries]
                else:
                    read_at = utc_now()
                    early = [_from_the_future(entry, read_at) for entry in entries]
                    billable = [entry for entry, no in zip(entries, early, strict=True) if no is None]
                    packets = [(entry.attributes, self._received_at(entry)) for entry in billable]
                    careful = partial(_savepoint, db)
                    billed = iter(bill_batch(db, packets, careful=careful, tariffs=self.tariffs, nas=self.nas,
                                             timings=timings))  # fmt: skip
                    outcomes = [next(billed) if no is None else no for no in early]
                unbilled = sum(1 for outcome in outcomes if outcome is None or outcome.unbilled is not None)
                with timings.timing("record"):
                    radius_batches.record_batch(
                        db, name, entries[0].first_byte, entries[-1].end_byte, len(entries), unbilled
                    )
                committing = time.perf_counter()
            timings.commit += time.perf_counter() - committing
        return outcomes

    def _bill_alone(self, db: Session, name: str, entry: Entry) -> PacketOutcome | None:
        early = _from_the_future(entry, utc_now())
        if early is not None:
            return early
        try:
            with db.begin_nested():
                return bill_packet(
                    entry.attributes,
                    self._received_at(entry),
                    quick=db,
                    careful=partial(_savepoint, db),
                    tariffs=self.tariffs,
                    nas=self.nas,
                )
        except UNAVAILABLE:
            raise
        except DBAPIError as exc:
            log.error("accounting import: packet at %s:%d not billed, the database refused it: %s",
                      name, entry.first_byte, first_line(exc))  # fmt: skip
            return None

    @staticmethod
    def _received_at(entry: Entry) -> datetime:
        """When radiusd received the packet (an entry that says neither: now, when it is read)."""
        return entry.written_at or utc_now()


@dataclass
class _Timings(BatchTimings):
    """A batch's phases as the importer sees them: the billing's, then recording the batch and the commit."""

    record: float = 0.0
    commit: float = 0.0


def _from_the_future(entry: Entry, read_at: datetime) -> PacketOutcome | None:
    """The outcome of an entry received after it was read (`FUTURE_SLACK`): logged, not billed; None otherwise."""
    if entry.written_at is None or entry.written_at <= read_at + FUTURE_SLACK:
        return None
    why = (f"its receive time {entry.written_at.isoformat()} is after it was read ({read_at.isoformat()}): "
           "radiusd did not write it so (a restored or edited spool?)")  # fmt: skip
    return PacketOutcome(None, None, "malformed", why)


@contextmanager
def _savepoint(db: Session) -> Iterator[Session]:
    """The locked rules of one packet inside the batch: a refused packet's writes are undone alone."""
    with db.begin_nested():
        yield db


def run_importer(
    settings: Settings,
    spool: Path,
    *,
    once: bool = False,
    batch_size: int = BATCH_SIZE,
    keep_batches: timedelta = KEEP_BATCHES,
    metrics_port: int = 0,
    metrics_address: str = "127.0.0.1",
    verbose: bool = False,
) -> ImportReport:
    """The hotspot-radius-import service: bill `spool` until SIGTERM or SIGINT (one pass with `once`), serving
    its metrics on `metrics_address:metrics_port` (0: not served); `verbose` logs each file's and batch's timings."""
    with importer_process(settings, "hotspot-radius-import") as sessions:
        if verbose:
            log.setLevel(logging.DEBUG)
        importer = AccountingImporter(spool, sessions, batch_size=batch_size, keep_batches=keep_batches)
        log.info("importer started: accounting, spool %s", spool)
        return run_service(importer, once=once, metrics_port=metrics_port, metrics_address=metrics_address)
