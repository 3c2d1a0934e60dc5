"""FreeRADIUS's detail file (what its `detail` module writes) read back as accounting packets.

An entry is a header line (the date), one `\\tName = value` line per attribute and an empty line. Values
come as rlm_python3 would pass them: text unquoted and unescaped (`\\"`, `\\\\`, `\\n`, `\\r`, `\\t` and
`\\ooo` octal for bytes that are not printable), integers by name or number, octets as `0x…`. Read
robustly: a line that is not an attribute is skipped and counted, bytes that are not UTF-8 are kept as
`\\xNN` (as the hook reads them), and an entry without its closing empty line is *torn* (radiusd was
writing it, or died while it did): it is never billed — radiusd answers only after the whole entry is
written, so the NAS sends it again.

A torn entry may also be followed by whole ones: radiusd never fsyncs the file, so after a power cut the
file ends where the disk had it (inside an entry, or in zeros where its size was written before its
data), and radiusd, started again, appends to it. The next entry's header is then glued to the torn rest:
the torn part is left out (`Parsed.torn`) rather than read as one entry with the attributes of two
packets.

A file is read a piece at a time (`pieces`): a backlog of a day's outage is gigabytes, and an entry held as
Python objects takes several times its bytes, so what is in memory is one piece and its entries, never the
file.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import BinaryIO

from rlm_hotspot.radius.decode import RAW_TEXT_PREFIX, Attributes, readable

_NAME = re.compile(rb"[A-Za-z0-9][A-Za-z0-9._:-]*")
_ATTRIBUTE = re.compile(rb"^\s+(" + _NAME.pattern + rb")\s*(?:=|:=|\+=)\s?(.*?)\s*$")
_OCTETS = re.compile(r"0x(?:[0-9A-Fa-f]{2})*")
_ESCAPE = re.compile(rb"\\([0-7]{3}|.)", re.DOTALL)
_ESCAPED = {b"n": b"\n", b"r": b"\r", b"t": b"\t"}
#: radiusd's receive time, "%l.%M" (unix seconds, six digits of microseconds): freeradius-config's dictionary,
#: set by the virtual server (rlm_hotspot.radius.config, BUFFERED_ACCOUNTING); no packet can carry it
RECEIVED_AT = "Hotspot-Received-At"
_EXACT = re.compile(r"([0-9]{1,12})\.([0-9]{6})")
_HEADER_FORMAT = "%a %b %d %H:%M:%S %Y"  # `header = "%t"`: radiusd's local time
#: An entry's header line (`%t`) followed by its first attribute: a value never holds a newline unescaped.
_HEADER = re.compile(
    rb"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ 0-9]\d "
    rb"\d\d:\d\d:\d\d \d{4}\n\t"
)
#: How much of a file `pieces` reads and parses at a time (~2,000 entries of radiusd's ~500 bytes).
PIECE_BYTES = 1 << 20


@dataclass(frozen=True)
class Entry:
    """One accounting request of the file: its byte range, its attributes and when radiusd wrote it."""

    first_byte: int
    end_byte: int
    attributes: Attributes
    written_at: datetime | None  # its exact receive time, else its Timestamp, else its header; None: none says
    skipped_lines: int = 0


@dataclass(frozen=True)
class Parsed:
    """The complete entries from an offset on, and where the unread (torn) rest begins."""

    entries: list[Entry]
    end_byte: int  # everything before it is in `entries` (or was blank, or torn)
    torn: list[tuple[int, int]] = field(default_factory=list)  # byte ranges of torn entries before end_byte


def parse(data: bytes, offset: int = 0, *, base: int = 0) -> Parsed:
    """The complete entries of `data` from byte `offset` (the start of an entry); a torn last entry is left.
    `data` is its file from byte `base` on: the byte ranges are the file's."""
    entries: list[Entry] = []
    torn: list[tuple[int, int]] = []
    position = offset
    while True:
        while data.startswith(b"\n", position):  # blank lines between entries
            position += 1
        end = data.find(b"\n\n", position)
        if end < 0:
            return Parsed(entries, base + position, torn)
        glued = _HEADER.search(data, position + 1, end + 2)
        if glued is not None:  # the rest of an entry torn by a power cut, then radiusd appended the next
            torn.append((base + position, base + glued.start()))
            position = glued.start()
            continue
        entries.append(_entry(data[position : end + 1], base + position, base + end + 2))
        position = end + 2


def pieces(file: BinaryIO, offset: int = 0, piece_bytes: int = PIECE_BYTES) -> Iterator[Parsed]:
    """The complete entries of `file` from byte `offset` (the start of an entry), parsed `piece_bytes` at a
    time, as `parse` parses the whole (an entry cut by a piece's end is read again with the next; one longer
    than a piece, by reading more). The last piece ends at the end of the file: its `end_byte` is where a torn
    last entry begins, or the file's size."""
    position, size = offset, piece_bytes
    while True:
        file.seek(position)
        data = file.read(size)
        parsed = parse(data, base=position)
        if len(data) < size:  # the end of the file
            yield parsed
            return
        if parsed.end_byte > position:
            yield parsed
            position, size = parsed.end_byte, piece_bytes
        else:  # not one whole entry in the piece
            size *= 2


def _entry(block: bytes, first_byte: int, end_byte: int) -> Entry:
    lines = block.split(b"\n")
    header, body = (lines[0], lines[1:]) if lines and not lines[0][:1].isspace() else (b"", lines)
    pairs: list[tuple[str, str]] = []
    skipped = 0
    for line in body:
        pair = _pair(line)
        if pair is None:
            skipped += line.strip() != b""
            continue
        name, value = pair
        if name.startswith(RAW_TEXT_PREFIX):
            if not _OCTETS.fullmatch(value):  # the site writes only octets
                skipped += 1
                continue
            pair = readable(name, value)
        pairs.append(pair)
    attributes = Attributes(tuple(pairs))
    return Entry(first_byte, end_byte, attributes, _written_at(attributes, header), skipped)


def _pair(line: bytes) -> tuple[str, str] | None:
    """An attribute line's name and value; None for a line that is none. radiusd writes `\\tName = value`: that
    is split without the general pattern (a file holds a dozen such lines per packet)."""
    name, equals, raw = line[1:].partition(b" = ")
    if line[:1] == b"\t" and equals and _NAME.fullmatch(name):
        return name.decode("ascii"), _value(raw.rstrip())
    match = _ATTRIBUTE.match(line)
    return None if match is None else (match.group(1).decode("ascii"), _value(match.group(2)))


def _value(raw: bytes) -> str:
    if len(raw) >= 2 and raw.startswith(b'"') and raw.endswith(b'"'):
        raw = _ESCAPE.sub(_unescape, raw[1:-1]) if b"\\" in raw else raw[1:-1]
    return raw.decode("utf-8", "backslashreplace")


def _unescape(match: re.Match[bytes]) -> bytes:
    escaped = match.group(1)
    if len(escaped) == 3:
        return bytes([int(escaped, 8) & 0xFF])
    return _ESCAPED.get(escaped, escaped)


def _written_at(attributes: Attributes, header: bytes) -> datetime | None:
    """When radiusd received the request: its exact time (RECEIVED_AT, which the site writes since sql/029),
    else the entry's Timestamp, else its header (local time) — both whole seconds, as an entry written before
    the upgrade is billed."""
    exact = _EXACT.fullmatch(attributes.first(RECEIVED_AT) or "")
    if exact is not None and (at := _posix(exact.group(1), int(exact.group(2)))) is not None:
        return at
    stamp = attributes.first("Timestamp")
    if stamp is not None and stamp.isascii() and stamp.isdigit() and (at := _posix(stamp)) is not None:
        return at
    try:
        return datetime.fromtimestamp(time.mktime(time.strptime(header.decode("ascii").strip(), _HEADER_FORMAT)), UTC)
    except (ValueError, OverflowError, UnicodeDecodeError):
        return None


def _posix(seconds: str, microseconds: int = 0) -> datetime | None:
    """A unix time as a date; None beyond what a date holds (the year 9999: a restored or hand-edited spool), so
    that the entry is read at the next time it gives rather than stall its file."""
    try:
        return datetime.fromtimestamp(int(seconds), UTC) + timedelta(microseconds=microseconds)
    except (ValueError, OverflowError, OSError):
        return None
