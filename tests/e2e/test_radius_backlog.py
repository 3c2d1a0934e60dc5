"""The accounting importer after a long database outage ("an ISP on a bad day"): radiusd kept answering into
its detail file, so the importer finds a backlog far larger than a batch. It bills it in full and exactly once
with its memory bounded by a piece of the file and a batch, not by the file (a day is gigabytes, and an entry
held as Python objects takes several times its bytes), across kill -9, and a stop (SIGTERM) ends it between
two batches rather than after the whole backlog. The importer is the real `hotspotctl radius import` process.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from devtools.detail import detail_entry
from rlm_hotspot.pins import PinVault
from tests.db.test_sessions import radius_login
from tests.e2e.conftest import wait_until
from tests.e2e.radius_harness import (
    NAS_BY_VENDOR,
    build_world,
    importer_command,
    login_happened_earlier,
    write_settings,
)
from tests.e2e.test_radius_accounting import assert_balanced, rows

MIKROTIK = NAS_BY_VENDOR["mikrotik"]
STATUS = {"start": "Start", "interim": "Interim-Update", "stop": "Stop"}
#: what an importer run is waited for at most (a hang fails the test; no speed is asserted)
HANG_S = 300.0


@dataclass(frozen=True)
class Backlog:
    """Sessions logged in, an importer's settings and the spool where radiusd left their accounting."""

    settings: Path
    spool: Path
    numbers: list[str]
    begun: int  # when the sessions' Starts were received (unix time)
    minutes: int  # how long each session lasts: its Stop is sent then
    started: list[subprocess.Popen[bytes]]  # the importers run on it (the `importers` fixture's)

    @property
    def packets(self) -> int:
        return len(self.numbers) * (self.minutes + 1)

    def write(self, minutes: range) -> int:
        """What the NAS sent in these `minutes` of every session (a Start, an Interim a minute, the Stop), round
        robin (a batch holds each session about once), as radiusd's live file; its size."""
        with (self.spool / "buffer.detail").open("wb") as file:
            for step in minutes:
                status = "start" if step == 0 else "stop" if step == self.minutes else "interim"
                at = self.begun + 60 * step
                file.writelines(
                    entry(status, number, index, 60 * step, at) for index, number in enumerate(self.numbers)
                )
            return file.tell()

    def run(self, *options: str) -> subprocess.Popen[bytes]:
        """`hotspotctl radius import` of the spool, logging beside it."""
        with (self.spool.parent / "importer.out").open("ab") as log:
            command = importer_command(self.settings, self.spool, *options)
            self.started.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
        return self.started[-1]

    def log_text(self) -> str:
        return (self.spool.parent / "importer.out").read_text(errors="replace")

    def drained(self) -> bool:
        return not any(self.spool.iterdir())


def entry(status: str, number: str, index: int, seconds: int, at: int) -> bytes:
    """One entry as radiusd's detail module writes a MikroTik hotspot's accounting (the site adds its exact
    receive time)."""
    octets = seconds * 40_000
    return detail_entry(at, [
        ("Acct-Status-Type", STATUS[status]),
        ("User-Name", f'"{number}"'),
        ("Acct-Session-Id", f'"80b{index:05x}"'),
        ("NAS-IP-Address", MIKROTIK),
        ("NAS-Identifier", '"cafe-hotspot-1"'),
        ("NAS-Port", index),
        ("NAS-Port-Type", "Wireless-802.11"),
        ("NAS-Port-Id", '"bridge-hotspot"'),
        ("Calling-Station-Id", f'"02:00:00:{index >> 8 & 255:02X}:{index & 255:02X}:01"'),
        ("Called-Station-Id", '"hotspot1"'),
        ("Framed-IP-Address", f"10.5.{index >> 8 & 255}.{index & 255}"),
        ("Acct-Session-Time", seconds),
        ("Acct-Input-Octets", octets & 0xFFFFFFFF),
        ("Acct-Output-Octets", octets * 9 & 0xFFFFFFFF),
        ("Acct-Input-Gigawords", octets >> 32),
        ("Acct-Output-Gigawords", octets * 9 >> 32),
        ("Acct-Input-Packets", octets // 700),
        ("Acct-Output-Packets", octets // 110),
        ("Acct-Delay-Time", 0),
        ("Acct-Authentic", "RADIUS"),
        ("Class", f"0x{f'hs:backlog-{index}'.encode().hex()}"),
        ("Packet-Src-IP-Address", MIKROTIK),
        ("Acct-Unique-Session-Id", f'"{index:032x}"'),
        ("Hotspot-Received-At", f"{at}.{index % 1_000_000:06d}"),
    ])


@pytest.fixture
def settings(tmp_path: Path, radius_database: str, key_file: Path) -> Path:
    """The importer's settings file (its spool is beside it)."""
    return write_settings(tmp_path, radius_database, key_file)


@pytest.fixture
def importers() -> Iterator[list[subprocess.Popen[bytes]]]:
    """The importers a test starts: one still running when it ends (it failed) is killed."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def backlog(
    radius_db: Engine,
    vault: PinVault,
    settings: Path,
    importers: list[subprocess.Popen[bytes]],
    *,
    sessions: int,
    minutes: int,
) -> Backlog:
    """Logins of `sessions` cards, `minutes` ago (their Starts, Interims and Stops are written by `write`)."""
    cards = build_world(radius_db, vault, count=sessions)
    with Session(radius_db) as db, db.begin():
        for index, number in enumerate(cards.numbers):
            radius_login(db, vault, number, token=f"backlog-{index}", nas_ip=MIKROTIK, now=datetime.now(UTC))
    login_happened_earlier(radius_db, 60 * minutes + 10)
    spool = settings.parent / "spool"
    spool.mkdir()
    begun = int(time.time()) - 60 * minutes - 5  # 5 s after the last login: each Start follows its own soon
    return Backlog(settings, spool, cards.numbers, begun, minutes, importers)


def peak_rss_kib(process: subprocess.Popen[bytes]) -> int:
    """The importer's peak resident memory so far (its VmHWM): what it has taken at most since it started."""
    status = Path(f"/proc/{process.pid}/status").read_text()
    [line] = [line for line in status.splitlines() if line.startswith("VmHWM:")]
    return int(line.split()[1])


def stop(process: subprocess.Popen[bytes], signum: signal.Signals) -> int:
    """Send `signum` to the importer and wait for it; its exit code."""
    process.send_signal(signum)
    return process.wait(timeout=HANG_S)


def committed(radius_db: Engine) -> tuple[int, int]:
    """(batches, packets) committed so far."""
    batches, packets = rows(radius_db, "SELECT count(*), coalesce(sum(packets), 0) FROM radius_batches")[0]
    return int(batches), int(packets)


def assert_billed_once(radius_db: Engine, work: Backlog, sizes: list[int]) -> None:
    """Every packet in exactly one committed batch, the batches tiling each file (of `sizes`), each session
    billed its whole time once (2 a started minute), the files deleted."""
    files: dict[str, list[tuple[int, int]]] = {}
    for name, first_byte, end_byte in rows(radius_db, "SELECT spool_file, first_byte, end_byte FROM radius_batches"):
        files.setdefault(name, []).append((first_byte, end_byte))
    tiles = [sorted(ranges) for ranges in files.values()]
    assert all(ranges[0][0] == 0 and all(a[1] == b[0] for a, b in pairwise(ranges)) for ranges in tiles)
    assert sorted(ranges[-1][1] for ranges in tiles) == sorted(sizes)  # no byte twice, none skipped
    assert committed(radius_db)[1] == work.packets
    sessions, minutes = len(work.numbers), work.minutes
    assert rows(radius_db, "SELECT status, seconds, charged, count(*) FROM sessions GROUP BY 1, 2, 3") == [
        ("closed", 60 * minutes, 2 * minutes, sessions)
    ]
    assert rows(radius_db, "SELECT count(*), sum(amount) FROM ledger WHERE cause = 'time'") == [
        (sessions * minutes, -2 * sessions * minutes)
    ]
    assert_balanced(radius_db)
    assert work.drained()


def test_a_backlog_is_billed_once_across_kill_9_in_memory_bounded_by_a_piece_and_a_batch(
    radius_db: Engine, vault: PinVault, settings: Path, importers: list[subprocess.Popen[bytes]]
) -> None:
    """200 sessions' Starts (200 packets, less than a piece) are billed by a first run: its peak RSS is the
    baseline. Then a backlog of their 39,800 next packets (~32 MB): a second run is killed (-9) a third of the
    way through, a third bills the rest. Neither exceeds the baseline by 48 MB (a 1 MiB piece and a batch of
    2,000 packets are ~15 MB at most; reading the file whole, the same runs took 260 and 170 MB more)."""
    work = backlog(radius_db, vault, settings, importers, sessions=200, minutes=199)
    sizes = [work.write(range(1))]
    first = work.run()
    wait_until(work.drained, timeout=HANG_S, what="the Starts billed")
    baseline = peak_rss_kib(first)
    assert stop(first, signal.SIGTERM) == 0
    sizes.append(work.write(range(1, 200)))
    assert sizes[1] > 30 << 20  # 30 pieces

    second = work.run()
    wait_until(lambda: committed(radius_db)[1] >= work.packets // 3, timeout=HANG_S, what="a third billed")
    killed = peak_rss_kib(second)
    assert stop(second, signal.SIGKILL) == -signal.SIGKILL
    assert committed(radius_db)[1] < work.packets
    third = work.run()
    wait_until(work.drained, timeout=HANG_S, what="the rest billed")
    resumed = peak_rss_kib(third)
    assert stop(third, signal.SIGTERM) == 0

    assert_billed_once(radius_db, work, sizes)
    print(f"peak RSS: {baseline} KiB billing 200 packets, {killed} and {resumed} KiB billing the backlog")
    assert killed < baseline + (48 << 10) and resumed < baseline + (48 << 10), (baseline, killed, resumed)


def test_a_stop_during_a_backlog_ends_after_the_batch_under_way_and_the_next_start_bills_the_rest(
    radius_db: Engine, vault: PinVault, settings: Path, importers: list[subprocess.Popen[bytes]]
) -> None:
    """SIGTERM while a backlog of 100 batches is billed: the importer commits at most the batch under way and
    exits (systemd's TimeoutStopSec would otherwise kill it); the next start resumes after it. The importer is
    frozen (SIGSTOP) while the batches committed are counted and the signal is sent, so that the count is what
    it had committed when it was told."""
    work = backlog(radius_db, vault, settings, importers, sessions=100, minutes=99)
    size = work.write(range(100))
    process = work.run("--batch-size", "100")
    wait_until(lambda: committed(radius_db)[0] >= 10, timeout=HANG_S, what="ten batches billed")
    process.send_signal(signal.SIGSTOP)
    told_at = committed(radius_db)[0]
    process.send_signal(signal.SIGTERM)
    assert stop(process, signal.SIGCONT) == 0
    stopped_at = committed(radius_db)[0]
    assert told_at <= stopped_at <= told_at + 1  # the batch under way (if any) finished, no other begun
    assert stopped_at < 100 and "stopping;" in work.log_text()
    assert len(list(work.spool.glob("buffer.detail.*.work"))) == 1  # the rest waits for the next start

    assert work.run("--batch-size", "100", "--once").wait(timeout=HANG_S) == 0
    assert committed(radius_db)[0] == 100
    assert_billed_once(radius_db, work, [size])
