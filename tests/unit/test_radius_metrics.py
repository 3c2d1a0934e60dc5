"""The FreeRADIUS module's metrics without radiusd: when it may take its port, and the buffer's backlog."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlm_hotspot.radius.metrics import Backlog, RadiusMetrics, buffer_backlog, checking_config

# as rlm_detail writes an entry: a ctime header, the attributes, then the time it was written
ENTRY = (
    'Mon Dec  7 06:34:11 2026\n\tAcct-Status-Type = Start\n\tUser-Name = "00010501334"\n'
    '\tAcct-Session-Id = "M2"\n\tTimestamp = {epoch}\n\n'
)


@pytest.mark.parametrize(
    ("argv", "checking"),
    [
        (["/usr/sbin/freeradius", "-f"], False),  # systemd's ExecStart
        (["/usr/sbin/freeradius", "-Cx", "-lstdout"], True),  # ExecStartPre
        (["/usr/sbin/freeradius", "-Cxm", "-lstdout"], True),  # ExecReload
        (["freeradius", "-f", "-xx", "-l", "stdout", "-d", "/tmp/C"], False),
        (["freeradius", "-X", "-d", "-C"], False),  # a config dir named -C
        (["freeradius", "-dC", "-X"], False),  # ... glued to its option
        (["freeradius", "-X", "-C", "-d", "/etc/freeradius/3.0"], True),  # radconf.check
        (["freeradius", "-lCx"], False),
        (["freeradius", "--", "-C"], False),
    ],
)
def test_a_config_check_is_told_from_the_command_line(argv: list[str], checking: bool) -> None:
    assert checking_config(argv) is checking


def test_nothing_buffered_is_no_backlog(tmp_path: Path) -> None:
    assert buffer_backlog(tmp_path / "buffer.detail", now=1000.0) == Backlog(0, 0, 0.0)
    (tmp_path / "buffer.detail").write_text("")  # created, nothing written yet
    assert buffer_backlog(tmp_path / "buffer.detail", now=1000.0) == Backlog(1, 0, 0.0)


def test_the_oldest_entry_is_the_work_files_first(tmp_path: Path) -> None:
    buffer = tmp_path / "buffer.detail"
    buffer.write_text(ENTRY.format(epoch=990) + ENTRY.format(epoch=995))
    assert buffer_backlog(buffer, now=1000.0) == Backlog(1, buffer.stat().st_size, 10.0)
    work = tmp_path / "buffer.detail.work"  # the reader took the older entries and bills them
    work.write_text(ENTRY.format(epoch=900))
    sizes = buffer.stat().st_size + work.stat().st_size
    assert buffer_backlog(buffer, now=1000.0) == Backlog(2, sizes, 100.0)
    work.write_text("")  # nothing readable in the work file: the buffer's first entry
    assert buffer_backlog(buffer, now=1000.0) == Backlog(2, buffer.stat().st_size, 10.0)


def test_the_backlog_is_exported_only_for_a_buffer(tmp_path: Path) -> None:
    (tmp_path / "buffer.detail").write_text(ENTRY.format(epoch=1))
    names = {family.name for family in RadiusMetrics(tmp_path / "buffer.detail").registry.collect()}
    assert {"hotspot_radius_buffer_bytes", "hotspot_radius_buffer_oldest_age_seconds"} <= names
    assert not any("buffer" in family.name for family in RadiusMetrics().registry.collect())
