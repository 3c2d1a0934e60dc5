"""The log formats of the long-running processes (rlm_hotspot.logs): JSON lines, and journald's plain lines."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import pytest

from rlm_hotspot.logs import JournalFormatter, JsonFormatter, first_line, formatter


def record(message: str, *args: object, level: int = logging.WARNING, **extra: object) -> logging.LogRecord:
    return logging.getLogger("rlm_hotspot.worker").makeRecord(
        "rlm_hotspot.worker", level, __file__, 1, message, args, None, extra=extra
    )


def test_a_json_line_has_time_level_logger_message_and_the_extra_fields() -> None:
    line = JsonFormatter().format(record("session %d cut", 7, session_id=7, nas="lobby"))
    entry = json.loads(line)
    assert entry.pop("time").endswith("+00:00")
    assert entry == {"level": "WARNING", "logger": "rlm_hotspot.worker", "message": "session 7 cut",
                     "session_id": 7, "nas": "lobby"}  # fmt: skip


def test_a_traceback_and_a_multi_line_message_stay_on_one_json_line() -> None:
    try:
        raise ValueError("bad\ndata")
    except ValueError:
        failed = record("import failed:\nsecond line", level=logging.ERROR)
        failed.exc_info = sys.exc_info()
    line = JsonFormatter().format(failed)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "import failed:\nsecond line"
    assert "Traceback" in entry["exception"] and "ValueError: bad" in entry["exception"]


def test_under_journald_a_plain_line_has_the_priority_and_no_timestamp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (tmp_path / "stream").open("w") as stream:
        status = os.fstat(stream.fileno())
        assert not isinstance(formatter("plain", stream), JournalFormatter)  # no $JOURNAL_STREAM: a terminal, a file
        monkeypatch.setenv("JOURNAL_STREAM", f"{status.st_dev}:{status.st_ino + 1}")  # another stream's
        assert not isinstance(formatter("plain", stream), JournalFormatter)
        monkeypatch.setenv("JOURNAL_STREAM", f"{status.st_dev}:{status.st_ino}")
        journal = formatter("plain", stream)
    assert journal.format(record("database unavailable (x)", level=logging.ERROR)) == (
        "<3>ERROR rlm_hotspot.worker: database unavailable (x)"
    )


def test_first_line_is_what_the_driver_said_first() -> None:
    class DriverError(Exception):
        orig = RuntimeError('connection to server on socket "/run/x/.s.PGSQL.5432" failed: No such file\n\tIs it up?')

    assert first_line(DriverError("long SQLAlchemy text\n[SQL: ...]")) == (
        'connection to server on socket "/run/x/.s.PGSQL.5432" failed: No such file'
    )
    assert first_line(ValueError("")) == "ValueError"
