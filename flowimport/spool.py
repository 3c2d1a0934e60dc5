"""Reading nfacctd print-plugin spool files: settled files, complete purge blocks, malformed lines counted.

A file is ``<down|up>-YYYYmmdd-HHMMSS[...].json``, named by the UTC start of its bin. Each purge writes
one block ``purge_init … purge_close``; a restart within the same bin appends another block. Only
blocks that end with ``purge_close`` are used (pmacct never fsyncs, and a block being written has no
close yet), and only in files untouched for the settle time. Each block is one batch, named
``<file>#<writer id>#<digest of its lines>`` so a re-delivered block is recognised and a different block
in a re-created file of the same name is not mistaken for it.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import logging
import re
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flowimport.collector import BILLABLE_TAG, FREE_TAG
from rlm_hotspot.services.flows import Direction, FlowBatch, TrafficCount, TrafficCounts

log = logging.getLogger(__name__)

SPOOL_NAME = re.compile(r"^(?P<direction>down|up)-(?P<stamp>\d{8}-\d{6})(?:[-.][\w.-]*)?\.json$")
DIRECTIONS = {"down": Direction.DOWNLOAD, "up": Direction.UPLOAD}
CLIENT_FIELD = {Direction.DOWNLOAD: "ip_dst", Direction.UPLOAD: "ip_src"}
DONE = "done"
#: Where files that could never be imported are moved (kept whole, for an admin; see docs/netflow.md).
FAILED = "failed"
#: A record's bin must lie this close to its file's bin: nfacctd (``nfacctd_time_new``, ``print_history``)
#: stamps every record of a file with the file's bin; a stamp far from it is damage, not traffic.
RECORD_BIN_TOLERANCE = timedelta(hours=1)
#: Batch names keep this much of a writer id (its printable characters): the digest already tells blocks
#: apart, and an absurdly long id would make the name too long for the index that gates replays (the batch
#: could never be recorded).
WRITER_ID_KEPT = 64
#: How many malformed lines per block are logged in full; the rest are only counted.
LOGGED_MALFORMED_LINES = 5


@dataclass(frozen=True)
class SpoolFile:
    """A spool file, its direction and the UTC start of its bin (from the name)."""

    path: Path
    direction: Direction
    bin_start: datetime

    @classmethod
    def parse_name(cls, path: Path) -> SpoolFile | None:
        match = SPOOL_NAME.match(path.name)
        if match is None:
            return None
        try:
            start = datetime.strptime(match["stamp"], "%Y%m%d-%H%M%S").replace(tzinfo=UTC)
        except ValueError:
            return None
        return cls(path, DIRECTIONS[match["direction"]], start)

    def is_settled(self, now: datetime, settle: timedelta) -> bool:
        """Nobody has written to the file for the settle time (its closed blocks can be read)."""
        return now.timestamp() - self.path.stat().st_mtime >= settle.total_seconds()

    def is_final(self, now: datetime, settle: timedelta, bin_length: timedelta) -> bool:
        """No more blocks can come: the bin is over, so is the refresh that purges it, and the settle time."""
        return self.is_settled(now, settle) and now >= self.bin_start + 2 * bin_length + settle


def pending_files(spool: Path) -> list[SpoolFile]:
    """Spool files waiting to be imported, oldest bin first (other names are ignored)."""
    found = (SpoolFile.parse_name(path) for path in spool.iterdir() if path.is_file())
    return sorted((f for f in found if f is not None), key=lambda f: (f.bin_start, f.path.name))


def move_to_done(spool_file: SpoolFile, subdirectory: str = DONE) -> Path:
    """Move an imported file out of the way (kept for audit; the batch ledger is the real record), or one
    that can never be imported into ``failed/``."""
    done = spool_file.path.parent / subdirectory
    done.mkdir(exist_ok=True)
    target = done / spool_file.path.name
    spool_file.path.replace(target)
    return target


@dataclass
class Block:
    """One purge block. Importable only when ``complete``: closed, with as many records as announced."""

    writer_id: str
    complete: bool = False
    damaged: bool = False
    counts: TrafficCounts = field(default_factory=TrafficCounts)
    malformed: int = 0
    lines: int = 0
    digest: Any = field(default_factory=hashlib.sha256)  # of the block's lines without their line ends

    @property
    def closed(self) -> bool:
        return self.complete or self.damaged

    def batch(self, spool_file: SpoolFile) -> FlowBatch:
        name = f"{spool_file.path.name}#{self.writer_id}#{self.digest.hexdigest()[:16]}"
        return FlowBatch(name, spool_file.direction, spool_file.bin_start, self.counts, self.malformed)


def _purge_lines(field: str) -> re.Pattern[bytes]:
    """The exact layout nfacctd 1.7.7 prints for purge records, one per line: parsed without a dict. A byte
    count of more digits than any counter has is left to the line-by-line reader (``int`` refuses 4,300+)."""
    return re.compile(
        rb'^\{"event_type": "purge", "tag": ([12]), "' + field.encode() + rb'": "([0-9A-Fa-f.:]+)", '
        rb'"stamp_inserted": "(\d+)", "stamp_updated": "\d+", "packets": \d+, "bytes": (\d{1,24})\}$',
        re.MULTILINE,
    )


_PURGE_LINES = {direction: _purge_lines(field) for direction, field in CLIENT_FIELD.items()}
#: Where a block may start or end: such lines are always read one by one (see ``_Parser.feed_file``).
_BOUNDARY = re.compile(rb"purge_(?:init|close)")
_FREE_TAG = str(FREE_TAG).encode()


#: Valid client addresses seen, raw → text: the same clients come back in every file, so each is checked
#: and decoded once, and a run of records is mapped to text by dict lookups in C.
_ADDRESSES: dict[bytes, str] = {}
_ADDRESSES_KEPT = 1 << 17


def _learn_addresses(raws: Iterable[bytes]) -> bool:
    """Add the addresses not seen yet to ``_ADDRESSES``; False if one of them is not an address."""
    distinct = set(raws)
    if len(_ADDRESSES) + len(distinct) > _ADDRESSES_KEPT:
        _ADDRESSES.clear()
    for raw in distinct.difference(_ADDRESSES):
        text = _valid_ip(raw)
        if text is None:
            return False
        _ADDRESSES[raw] = text
    return True


def _valid_ip(raw: bytes) -> str | None:
    """The address as text if it is one."""
    text = raw.decode("ascii", "replace")
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, text)
        except (OSError, ValueError):  # ValueError: an embedded NUL
            continue
        return text
    return None


@dataclass
class _Parser:
    """Turns one file into blocks; malformed lines are skipped, counted and logged."""

    spool_file: SpoolFile
    blocks: list[Block] = field(default_factory=list)
    _stamps: dict[object, datetime | None] = field(default_factory=dict)

    @property
    def _open_block(self) -> Block | None:
        return self.blocks[-1] if self.blocks and not self.blocks[-1].closed else None

    def feed_file(self, data: bytes) -> None:
        """Lines that may open or close a block are read one by one; the runs of lines between them, in
        bulk when every line is a well-formed purge record inside an open block (the common case), else
        one by one, which reports each malformed line exactly."""
        position, number = 0, 1
        while position < len(data):
            boundary = _BOUNDARY.search(data, position)
            # The run ends where the boundary's line starts.
            run_end = len(data) if boundary is None else data.rfind(b"\n", position, boundary.start()) + 1
            run_end = max(run_end, position)
            if run_end > position:
                run = data[position:run_end]
                lines = run.replace(b"\n", b"")  # the run's lines without their ends, as the digest reads them
                newlines = len(run) - len(lines)
                if not self._feed_records(run, newlines, lines):
                    self._feed_lines(run, number)
                number += newlines
            if boundary is not None:
                line_end = data.find(b"\n", boundary.end())
                line_end = len(data) if line_end < 0 else line_end + 1
                self._feed_lines(data[run_end:line_end], number)
                number += 1
                run_end = line_end
            position = run_end

    def _feed_records(self, run: bytes, newlines: int, lines: bytes) -> bool:
        """Add a run of purge records (with ``newlines`` line ends; ``lines`` without them) to the open
        block in bulk; False (nothing done) unless every line of the run is one, with a valid address."""
        block = self._open_block
        if block is None:
            return False
        records = _PURGE_LINES[self.spool_file.direction].findall(run)
        if len(records) != newlines + (not run.endswith(b"\n")):
            return False
        tags, raw_ips, raw_stamps, sizes = zip(*records, strict=True)
        if not _learn_addresses(raw_ips):
            return False
        starts = {raw: self._bin_start(raw) for raw in set(raw_stamps)}
        stamps = {raw: start for raw, start in starts.items() if start is not None}
        if len(stamps) < len(starts):
            return False
        one_bin = len(stamps) == 1  # as a rule: a file holds one bin
        block.counts.extend(
            map(_ADDRESSES.__getitem__, raw_ips),
            [*stamps.values()] * len(records) if one_bin else map(stamps.__getitem__, raw_stamps),
            map(int, sizes),
            map(_FREE_TAG.__eq__, tags),
        )
        block.digest.update(lines)
        block.lines += len(records)
        return True

    def _feed_lines(self, lines: bytes, number: int) -> None:
        for offset, raw in enumerate(lines.split(b"\n")):
            if raw.strip():
                self.feed(raw.rstrip(b"\r"), number + offset)

    def feed(self, raw: bytes, number: int) -> None:
        """One line (without its line end), whatever it holds."""
        try:
            record = json.loads(raw)
        except (ValueError, RecursionError):  # not JSON, not UTF-8, a number of 4,300+ digits, deep nesting
            record = None
        event = record.get("event_type") if isinstance(record, dict) else None
        if event == "purge_init":
            writer = str(record.get("writer_id", "?"))
            writer_id = "".join(filter(str.isprintable, writer))[:WRITER_ID_KEPT]  # PostgreSQL text has no NUL
            self.blocks.append(Block(writer_id=writer_id))
            self.blocks[-1].digest.update(raw)
            return
        block = self._open_block
        if block is None:
            self._malformed(None, number, raw, "outside a purge_init … purge_close block")
            return
        block.digest.update(raw)
        if event == "purge_close":
            self._close(block, record, number)
            return
        block.lines += 1
        if event != "purge":
            self._malformed(block, number, raw, "not a purge record")
            return
        assert isinstance(record, dict)
        ip_field = CLIENT_FIELD[self.spool_file.direction]
        problem = self._count(
            block, record.get(ip_field), record.get("bytes"), record.get("tag"), record.get("stamp_inserted")
        )
        if problem is not None:
            self._malformed(block, number, raw, problem)

    def _close(self, block: Block, record: dict[str, object], number: int) -> None:
        expected = record.get("purged_entries")
        if isinstance(expected, int) and expected != block.lines:
            log.error(
                "%s:%d: block %s announces %d records but holds %d: not imported (file damaged?)",
                self.spool_file.path,
                number,
                block.writer_id,
                expected,
                block.lines,
            )
            block.damaged = True
            return
        block.complete = True

    def _count(self, block: Block, ip: object, size: object, tag: object, stamp: object) -> str | None:
        """Validate one record and add it to the block; returns what is wrong with it, if anything."""
        if not isinstance(ip, str) or _valid_ip(ip.encode("utf-8", "replace")) is None:
            return f"no valid {CLIENT_FIELD[self.spool_file.direction]}"
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            return "bytes is not a non-negative integer"
        if tag not in (FREE_TAG, BILLABLE_TAG):
            return f"tag {tag!r} is neither {FREE_TAG} (free) nor {BILLABLE_TAG} (billable): is the pre_tag_map loaded?"
        start = self._bin_start(stamp)
        if start is None:
            return "stamp_inserted is not a UNIX time within an hour of the file's bin"
        block.counts.append(TrafficCount(ip, start, size, tag == FREE_TAG))
        return None

    def _bin_start(self, stamp: object) -> datetime | None:
        """The row's bin (epoch seconds as text, as timestamps_since_epoch writes it), else the file's;
        None if it is no time, or too far from the file's bin (``RECORD_BIN_TOLERANCE``)."""
        if stamp is None:
            return self.spool_file.bin_start
        if not isinstance(stamp, str | bytes | int) or isinstance(stamp, bool):  # a list is not even hashable
            return None
        if stamp not in self._stamps:
            self._stamps[stamp] = self._parse_stamp(stamp.decode() if isinstance(stamp, bytes) else str(stamp))
        return self._stamps[stamp]

    def _parse_stamp(self, text: str) -> datetime | None:
        try:
            start = datetime.fromtimestamp(int(text), UTC) if text.isdigit() else None
        except (OverflowError, OSError, ValueError):  # digits, but no representable time
            return None
        if start is None or abs(start - self.spool_file.bin_start) > RECORD_BIN_TOLERANCE:
            return None
        return start

    def _malformed(self, block: Block | None, number: int, raw: bytes, problem: str) -> None:
        if block is not None:
            block.malformed += 1
        if block is None or block.malformed <= LOGGED_MALFORMED_LINES:
            log.warning("%s:%d: skipped malformed line (%s): %.200r", self.spool_file.path, number, problem, raw)


@contextlib.contextmanager
def no_cycle_collection() -> Iterator[None]:
    """Pause the cycle collector: parsing a file allocates one tuple per record (tens of thousands), and
    importing a batch one per (IP, bin) and per session, none in a reference cycle; the collector would
    rescan them over and over (it doubled the parse time, and the attribution's)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def read_blocks(spool_file: SpoolFile) -> list[Block]:
    """Every block of the file, complete or not, in file order."""
    data = spool_file.path.read_bytes()
    parser = _Parser(spool_file)
    with no_cycle_collection():
        parser.feed_file(data)
    return parser.blocks
