"""The `pmacct` client source: read-and-erase nfacctd's memory table into spool files.

Guarantee: **at most once**, not exactly once. The memory plugin erases its table as it answers, so
counts are lost if this process dies between the answer and the fsync of the spool file, if nfacctd
restarts or crashes (the whole table), or if the table is too small (new aggregates are dropped
silently; nfacctd logs "Unable to allocate more memory pools"). Once written, a file is imported
exactly once like a print-plugin file. Prefer the print plugins; see docs/netflow.md.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from flowimport.collector import DIRECTIONS

AT_MOST_ONCE_WARNING = (
    "source=memory reads nfacctd's in-memory table with `pmacct -s -e`: counts are lost if this importer "
    "dies between a read and its spool write, if nfacctd restarts, or if the table is undersized — "
    "use the print plugins (source=print) for exactly-once billing"
)


class PollError(RuntimeError):
    """The pmacct client could not read a memory table; the message carries its error."""


def read_and_erase(pipe: Path, pmacct: str = "pmacct", timeout: float = 30.0) -> list[bytes]:
    """One `pmacct -s -O json -e` query: the table's lines, and the table is cleared."""
    try:
        done = subprocess.run(
            [pmacct, "-p", str(pipe), "-s", "-O", "json", "-e"], capture_output=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PollError(f"cannot run {pmacct} on {pipe}: {exc}") from exc
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).decode(errors="replace").strip() or f"exit status {done.returncode}"
        raise PollError(f"{pmacct} -p {pipe}: {detail}")
    return [line for line in done.stdout.splitlines() if line.strip()]


def write_spool_file(spool: Path, direction: str, bin_start: datetime, lines: list[bytes]) -> Path:
    """Write one purge block the way the print plugin does, durably, under a name no one else uses."""
    stamp = str(int(bin_start.timestamp()))
    writer = f"{direction}/memory-{os.getpid()}-{stamp}"
    body = [json.dumps({"event_type": "purge_init", "writer_id": writer}).encode()]
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict):
            record.update(event_type="purge", stamp_inserted=stamp)
            body.append(json.dumps(record).encode())
        else:
            body.append(line)  # kept as is: the reader counts it as malformed
    closing = {"event_type": "purge_close", "writer_id": writer, "purged_entries": len(lines)}
    body.append(json.dumps(closing).encode())
    temporary = spool / f".{direction}-{stamp}.tmp"
    with temporary.open("wb") as handle:
        handle.write(b"\n".join(body) + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    base = f"{direction}-{bin_start:%Y%m%d-%H%M%S}-memory"
    for attempt in range(1000):
        target = spool / (f"{base}.json" if attempt == 0 else f"{base}-{attempt}.json")
        try:
            os.link(temporary, target)  # never replaces a file not yet imported
        except FileExistsError:
            continue
        temporary.unlink()
        return target
    raise PollError(f"too many spool files named {base}*.json")


def poll_memory_tables(
    pipes: Mapping[str, Path], spool: Path, bin_start: datetime, pmacct: str = "pmacct"
) -> list[Path]:
    """Read-and-erase every direction's table into a spool file; returns the files written."""
    written = []
    for direction in DIRECTIONS:
        lines = read_and_erase(pipes[direction], pmacct)
        written.append(write_spool_file(spool, direction, bin_start, lines))
    return written
