"""The import loop: settled spool files → one transaction per purge block → file moved to done/.

Exactly once: a batch's name is recorded in the same transaction as its debits, so a crash after the
COMMIT but before the file is moved only makes the next cycle skip that batch. Nothing a user or the
environment can cause stops the loop: an unreadable spool, a malformed line, a database that is down
or a hotspot misconfigured are logged, counted and retried on the next cycle, and a failed batch is
rolled back whole.

Nor can one bad file stall the others: when a transaction of several files fails, each file is imported
on its own, so the good ones are billed; a file that fails on its own ``MAX_TRIES`` times, or whose
name puts its bin before 1970 or in the future, is moved to ``<spool>/failed/``. What is failing, why and
since when is kept in ``<spool>/.import-failing.json`` for ``hotspotctl flows status``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from flowimport.health import udp_drops
from flowimport.memory import AT_MOST_ONCE_WARNING, PollError, poll_memory_tables
from flowimport.metrics import Metrics
from flowimport.spool import (
    FAILED,
    Block,
    SpoolFile,
    move_to_done,
    no_cycle_collection,
    pending_files,
    read_blocks,
)
from rlm_hotspot.clock import utc_now
from rlm_hotspot.logs import first_line
from rlm_hotspot.services.errors import ServiceError
from rlm_hotspot.services.flows import FlowBatch, HeldTraffic, ImportOutcome, ImportPolicy, import_batches
from rlm_hotspot.spool_importer import run_loop

log = logging.getLogger(__name__)

#: Records imported per transaction at most (whole files): a backlog is caught up in few, large imports.
MAX_RECORDS = 500_000
#: Imports of a file on its own that fail (with the database up) before it is moved to ``failed/``.
MAX_TRIES = 3
#: A file whose name puts its bin further ahead of the clock is moved to ``failed/``: importing it would
#: bill the sessions open now for traffic of a time that has not come.
FUTURE_TOLERANCE = timedelta(hours=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: The importer's failures as they stand, for `hotspotctl flows status` (another process).
FAILING_STATE = ".import-failing.json"
#: Held excesses logged one by one per import; the rest are counted in one line.
LOGGED_HELD = 5


@dataclass
class Failure:
    """A spool file (or the database) failing to import: since when, how often, the latest reason."""

    what: str
    reason: str
    since: str  # ISO 8601, UTC
    tries: int = 1


def read_failing(spool: Path) -> list[Failure]:
    """What the importer of this spool last reported as failing (nothing if it reported no failure)."""
    try:
        return [Failure(**entry) for entry in json.loads((spool / FAILING_STATE).read_text())]
    except FileNotFoundError:
        return []


@dataclass(frozen=True)
class ImporterSettings:
    hotspot: str
    spool: Path
    policy: ImportPolicy = field(default_factory=ImportPolicy)
    settle: timedelta = timedelta(seconds=10)
    interval: timedelta = timedelta(seconds=10)
    memory_pipes: dict[str, Path] | None = None  # set: poll nfacctd's memory tables instead of print files
    collector_port: int | None = None  # for the UDP drop gauge
    metrics_file: Path | None = None


@dataclass
class CycleReport:
    """What one cycle did; ``errors`` > 0 means something will be retried."""

    outcomes: list[ImportOutcome] = field(default_factory=list)
    replayed: int = 0
    files_done: int = 0
    incomplete_blocks: int = 0
    errors: int = 0
    database_down: bool = False  # or the hotspot refused: nothing could be imported, the loop backs off

    @property
    def busy(self) -> bool:
        """Never: the next cycle waits its interval (files must settle, a memory table fill for a bin)."""
        return False

    @property
    def imported(self) -> list[str]:
        """Names of the batches imported (not replayed) in this cycle."""
        return [name for outcome in self.outcomes for name in outcome.imported]


#: The failing entry of failures that are not a file's.
DATABASE = "(database or hotspot)"


def _reason(exc: BaseException) -> str:
    """One line saying why an import failed."""
    if isinstance(exc, DBAPIError):
        return first_line(exc)
    return f"{type(exc).__name__}: {exc}"


class _Abort(Exception):
    """The rest of this cycle is pointless (database down, hotspot misconfigured): retry next cycle.

    Raised after the failure was logged and counted.
    """


class Importer:
    """Imports one hotspot's spool; ``run_cycle`` is one pass, ``run`` loops until stopped."""

    def __init__(
        self,
        settings: ImporterSettings,
        sessions: sessionmaker[Session],
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.metrics = metrics or Metrics(settings.hotspot)
        self.clock = clock
        self.stopping = threading.Event()
        self._last_poll: datetime | None = None
        self._last_bin_end: datetime | None = None
        self._failing: dict[str, Failure] = {}

    def run(self, *, once: bool = False) -> CycleReport:
        """Loop (or one cycle with ``once``) until ``stopping`` is set; returns the last cycle's report."""
        if self.settings.memory_pipes is not None:
            log.warning(AT_MOST_ONCE_WARNING)
        log.info("importer started: hotspot %s, spool %s", self.settings.hotspot, self.settings.spool)
        return run_loop(self.run_cycle, stopping=self.stopping, idle_pause=self._pause(), once=once)

    def _pause(self) -> float:
        if self.settings.memory_pipes is None:
            return self.settings.interval.total_seconds()
        return float(self.settings.policy.bin_seconds)

    def run_cycle(self) -> CycleReport:
        report = CycleReport()
        failing_before = self._failing_state()
        try:
            if self.settings.memory_pipes is not None:
                self._poll_memory()
            files = pending_files(self.settings.spool)
            self.metrics.child(self.metrics.pending).set(len(files))
            present = {spool_file.path.name for spool_file in files} | {DATABASE}
            self._failing = {what: failure for what, failure in self._failing.items() if what in present}
            self._import_files(files, report, force=False)
            self._failing.pop(DATABASE, None)  # the cycle got through (a database failure raises _Abort)
        except _Abort:  # counted and logged where it happened; the next cycle retries
            report.database_down = True
        except OSError as exc:
            log.error("cannot read the spool %s: %s; retrying in %s", self.settings.spool, exc, self._pause())
            report.errors += 1
        except PollError as exc:
            log.error("%s; retrying next cycle", exc)
            report.errors += 1
        if report.errors:
            self.metrics.child(self.metrics.errors).inc(report.errors)
        if self._failing_state() != failing_before:
            self._write_failing()
        self._update_gauges()
        return report

    def import_files(self, paths: list[Path]) -> CycleReport:
        """Import the complete blocks of the given files now, whatever their age; never moves them."""
        files = []
        for path in paths:
            spool_file = SpoolFile.parse_name(path)
            if spool_file is None:
                raise ServiceError(f"{path}: not a spool file name (expected down-YYYYmmdd-HHMMSS.json or up-…)")
            files.append(spool_file)
        report = CycleReport()
        with contextlib.suppress(_Abort):  # logged and counted where it happened
            self._import_files(files, report, force=True)
        self._update_gauges()
        return report

    def _import_files(self, files: list[SpoolFile], report: CycleReport, *, force: bool) -> None:
        """Import settled files' complete blocks, whole files at a time, up to MAX_RECORDS per transaction;
        a file that failed before is imported on its own."""
        group: list[tuple[SpoolFile, list[Block]]] = []
        records = 0
        for spool_file in files:
            if self.stopping.is_set():
                break
            if not self._plausible_bin(spool_file, report, force=force):
                continue
            blocks = self._settled_blocks(spool_file, report, force=force)
            if blocks is None:
                continue
            if spool_file.path.name in self._failing:
                self._import_group([(spool_file, blocks)], report, force=force)
                continue
            size = sum(len(block.counts) for block in blocks if block.complete)
            if group and records + size > MAX_RECORDS:
                self._import_group(group, report, force=force)
                group, records = [], 0
            group.append((spool_file, blocks))
            records += size
        if group:
            self._import_group(group, report, force=force)

    def _plausible_bin(self, spool_file: SpoolFile, report: CycleReport, *, force: bool) -> bool:
        """False (and the file moved to failed/, unless forced) if its name puts its bin before 1970 or
        ahead of the clock: nfacctd names files by the bin it is filling, on this host's clock."""
        now = self.clock()
        if EPOCH <= spool_file.bin_start <= now + FUTURE_TOLERANCE:
            return True
        reason = f"its name puts its bin at {spool_file.bin_start.isoformat()}, not between 1970 and now"
        report.errors += 1
        if force:
            log.error("%s: %s: not imported", spool_file.path, reason)
        else:
            self._move_aside(spool_file, reason)
        return False

    def _settled_blocks(self, spool_file: SpoolFile, report: CycleReport, *, force: bool) -> list[Block] | None:
        try:
            if not force and not spool_file.is_settled(self.clock(), self.settings.settle):
                return None
            return read_blocks(spool_file)
        except OSError as exc:  # the environment (permissions, a vanished file), not the file: retried, not moved
            log.error("cannot read %s: %s; retrying next cycle", spool_file.path, exc)
            report.errors += 1
            if not force:
                self._note_failure(spool_file.path.name, f"cannot read it: {exc}")
            return None
        except Exception as exc:  # a reader bug the file triggers: the file is the problem, never the loop
            log.exception("cannot parse %s", spool_file.path)
            report.errors += 1
            self._file_failed(spool_file, f"cannot parse it: {exc!r}", force=force)
            return None

    def _import_group(self, group: list[tuple[SpoolFile, list[Block]]], report: CycleReport, *, force: bool) -> None:
        """One transaction for the group's batches; then move the files that are final. If it fails, each
        file on its own: the good ones are billed, the bad one is found."""
        batches = [block.batch(spool_file) for spool_file, blocks in group for block in blocks if block.complete]
        if batches:
            failure = self._import_batches(batches, report)
            if failure is not None:
                if len(group) > 1:
                    for member in group:
                        self._import_group([member], report, force=force)
                else:
                    self._file_failed(group[0][0], failure, force=force)
                return
        now = self.clock()
        for spool_file, blocks in group:
            if self._failing.pop(spool_file.path.name, None) is not None:
                log.info("%s: imported after all", spool_file.path)
            if not force and spool_file.is_final(now, self.settings.settle, self._bin_length):
                self._retire(spool_file, blocks, report)

    def _note_failure(self, what: str, reason: str) -> Failure:
        """Remember that ``what`` (a file name, or DATABASE) failed, for `flows status`."""
        failure = self._failing.get(what)
        if failure is None:
            failure = self._failing[what] = Failure(what, reason, self.clock().isoformat(), 0)
        failure.tries += 1
        failure.reason = reason
        return failure

    def _file_failed(self, spool_file: SpoolFile, reason: str, *, force: bool) -> None:
        """Count a failure of the file on its own (the report counted it already); at MAX_TRIES, move it to
        failed/."""
        if force:
            return
        failure = self._note_failure(spool_file.path.name, reason)
        if failure.tries < MAX_TRIES:
            log.error("%s failed to import on its own (try %d of %d): %s", spool_file.path, failure.tries, MAX_TRIES,
                      reason)  # fmt: skip
            return
        del self._failing[failure.what]
        self._move_aside(spool_file, f"{MAX_TRIES} imports of it failed, the last one: {reason}")

    def _move_aside(self, spool_file: SpoolFile, reason: str) -> None:
        try:
            target = move_to_done(spool_file, FAILED)
        except OSError as exc:
            log.error("%s: %s; cannot move it to %s/: %s", spool_file.path, reason, FAILED, exc)
            return
        self.metrics.child(self.metrics.files_failed).inc()
        log.error(
            "%s: %s; moved to %s (nothing of it billed by this move; once fixed, import it with "
            "`hotspotctl flows import`)",
            spool_file.path,
            reason,
            target,
        )

    def _failing_state(self) -> list[dict[str, object]]:
        return [asdict(failure) for failure in self._failing.values()]

    def _write_failing(self) -> None:
        """Atomically replace the failing state read by `flows status` (removed when nothing fails)."""
        path = self.settings.spool / FAILING_STATE
        try:
            if not self._failing:
                path.unlink(missing_ok=True)
                return
            temporary = path.with_suffix(".tmp")
            temporary.write_text(json.dumps(self._failing_state()))
            temporary.replace(path)
        except OSError as exc:
            log.error("cannot write %s: %s", path, exc)

    def _retire(self, spool_file: SpoolFile, blocks: list[Block], report: CycleReport) -> None:
        for block in blocks:
            if not block.complete:
                report.incomplete_blocks += 1
                self.metrics.child(self.metrics.incomplete).inc()
                log.error(
                    "%s: block %s was never completed by nfacctd (crash or damaged file): its %d records are "
                    "not billed; the file is kept in done/",
                    spool_file.path,
                    block.writer_id,
                    len(block.counts),
                )
        move_to_done(spool_file)
        report.files_done += 1

    def _import_batches(self, batches: list[FlowBatch], report: CycleReport) -> str | None:
        """The batches in one transaction; the reason if it failed (rolled back whole). Raises _Abort when
        nothing else can be imported this cycle either (the database is down, the hotspot refused)."""
        try:
            with no_cycle_collection(), self.sessions.begin() as db:
                outcome = import_batches(db, self.settings.hotspot, batches, self.clock(), self.settings.policy)
        except ServiceError as exc:
            log.error("%s; nothing imported, retrying next cycle", exc)
            report.errors += 1
            self._note_failure(DATABASE, str(exc))
            raise _Abort from exc
        except Exception as exc:
            reason = _reason(exc)
            if isinstance(exc, DBAPIError):
                log.error("%d batch(es) from %s on not imported (rolled back): %s", len(batches), batches[0].name,
                          reason)  # fmt: skip
            else:  # not a database error: a bug the data triggers; its traceback says where
                log.exception("%d batch(es) from %s on not imported (rolled back)", len(batches), batches[0].name)
            report.errors += 1
            self.metrics.child(self.metrics.batches, outcome="failed").inc(len(batches))
            if isinstance(exc, OperationalError) and not self._database_answers():
                self._note_failure(DATABASE, reason)
                log.error("the database does not answer: retrying next cycle")
                raise _Abort from exc
            return reason
        self._record(outcome, batches, report)
        return None

    def _database_answers(self) -> bool:
        """Whether a failed import failed for the database's sake (down, restarting) or for its data's."""
        try:
            with self.sessions() as db:
                db.execute(text("SELECT 1"))
        except DBAPIError:
            return False
        return True

    def _record(self, outcome: ImportOutcome, batches: list[FlowBatch], report: CycleReport) -> None:
        m = self.metrics
        report.outcomes.append(outcome)
        report.replayed += len(outcome.replayed)
        for name in outcome.replayed:  # routine: a file is read again each scan until it is moved to done/
            log.debug("batch %s was imported before: skipped", name)
        m.child(m.batches, outcome="replayed").inc(len(outcome.replayed))
        if not outcome.imported:
            return
        imported = [batch for batch in batches if batch.name in set(outcome.imported)]
        malformed = sum(batch.malformed for batch in imported)
        m.child(m.batches, outcome="imported").inc(len(imported))
        m.child(m.records).inc(outcome.records)
        m.child(m.malformed).inc(malformed)
        for kind in ("billable", "free", "unattributed"):
            m.child(m.bytes, **{"class": kind}).inc(getattr(outcome, f"{kind}_bytes"))
        m.child(m.debited).inc(outcome.debited)
        self._log_held(outcome.held)
        bin_end = max(max(b.counts.bin_starts, default=b.bin_start) for b in imported) + self._bin_length
        self._last_bin_end = max(bin_end, self._last_bin_end or bin_end)
        log.info(
            "imported %d batch(es) from %s: %d records, %d sessions, %d billable / %d free / %d unattributed "
            "bytes, %d debited%s%s",
            len(imported),
            imported[0].name,
            outcome.records,
            outcome.sessions,
            outcome.billable_bytes,
            outcome.free_bytes,
            outcome.unattributed_bytes,
            outcome.debited,
            f", {malformed} malformed lines skipped" if malformed else "",
            f", accounts exhausted: {list(outcome.exhausted_accounts)}" if outcome.exhausted_accounts else "",
        )

    def _log_held(self, held: tuple[HeldTraffic, ...]) -> None:
        m = self.metrics
        for each in held:
            m.child(m.held_records, reason=each.reason).inc()
            m.child(m.held_bytes, reason=each.reason).inc(each.held)
        for each in held[:LOGGED_HELD]:
            log.warning(
                "held, not billed: %s %s bytes of %s in bin %s (%s: %d reported, %d billed) session %s, batch %s",
                each.direction.value,
                each.held,
                each.ip,
                each.bin_start.isoformat(),
                each.reason,
                each.reported,
                each.reported - each.held,
                each.session_id,
                each.batch,
            )
        if len(held) > LOGGED_HELD:
            log.warning("held, not billed: %d more counts beyond the line rate (see the quarantine)",
                        len(held) - LOGGED_HELD)  # fmt: skip

    @property
    def _bin_length(self) -> timedelta:
        return self.settings.policy.bin_length

    def _poll_memory(self) -> None:
        now = self.clock()
        bin_start = self._last_poll or now - self._bin_length
        assert self.settings.memory_pipes is not None
        poll_memory_tables(self.settings.memory_pipes, self.settings.spool, bin_start)
        self._last_poll = now

    def _update_gauges(self) -> None:
        m = self.metrics
        if self._last_bin_end is not None:
            m.child(m.last_bin_end).set(self._last_bin_end.timestamp())
            m.child(m.lag).set((self.clock() - self._last_bin_end).total_seconds())
        if self.settings.collector_port is not None:
            drops = udp_drops(self.settings.collector_port)
            if drops is not None:
                m.child(m.udp_drops).set(drops)
        if self.settings.metrics_file is not None:
            try:
                m.write_textfile(self.settings.metrics_file)
            except OSError as exc:
                log.error("cannot write metrics to %s: %s", self.settings.metrics_file, exc)
