"""Logging of the long-running processes (worker, portal, console, NetFlow importer), set up in one place.

One line per event on stderr, in one of two formats:

* ``plain`` — ``<time> <LEVEL> <logger>: <message>``; under systemd (stderr is the journal's stream, as
  $JOURNAL_STREAM says) the time is left out, journald stamps each line itself, and a ``<N>`` prefix gives
  journald the line's priority (``journalctl -p warning`` works).
* ``json`` — one JSON object per line: time (UTC, ISO 8601), level, logger, message, the record's extra
  fields, and the traceback (``exception``) of an unexpected error.

Expected faults (the database away, a NAS not answering) are one line without a traceback: the code that
meets them logs `first_line(exc)`; a traceback is kept for what is a bug.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import IO, Any

FORMATS = ("plain", "json")
# syslog priorities (RFC 5424) that journald reads from a "<N>" line prefix
_PRIORITIES = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}
# what every LogRecord has: anything else was passed in `extra=` and goes into the JSON object
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers (Loki, Elasticsearch, `journalctl -o cat | jq`)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update((k, v) for k, v in vars(record).items() if k not in _RECORD_FIELDS and not k.startswith("_"))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class JournalFormatter(logging.Formatter):
    """Plain lines for journald: its own timestamp, our priority as a "<N>" prefix."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return f"<{_PRIORITIES.get(record.levelno, 6)}>{super().format(record)}"


def formatter(log_format: str, stream: IO[str]) -> logging.Formatter:
    """The formatter of `log_format` for lines written to `stream`."""
    if log_format == "json":
        return JsonFormatter()
    if log_format != "plain":
        raise ValueError(f"log format is one of {', '.join(FORMATS)}")
    if _is_journal(stream):
        return JournalFormatter()
    return logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")


def _is_journal(stream: IO[str]) -> bool:
    """systemd sets $JOURNAL_STREAM to the device:inode of the journal's stream; a redirected stderr is not it."""
    expected = os.environ.get("JOURNAL_STREAM", "")
    try:
        status = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return expected == f"{status.st_dev}:{status.st_ino}"


def setup(log_format: str = "plain", level: int = logging.INFO, stream: IO[str] | None = None) -> None:
    """Send every logger's records, one line each, to stderr (or `stream`) in `log_format`.

    Like `logging.basicConfig`, nothing changes when logging is set up already (by a test runner, or by a
    program that embeds ours).
    """
    out = stream or sys.stderr
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter(log_format, out))
    logging.basicConfig(level=level, handlers=[handler])


def first_line(exc: BaseException) -> str:
    """What the database driver (or any error) said, in one line: for an expected fault, logged without a traceback."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
