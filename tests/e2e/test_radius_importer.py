"""Buffered accounting billed by the importer process (`hotspotctl radius import`) from the detail file a
real radiusd writes: the same charges as the per-packet path, and exactly once across kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path

from sqlalchemy import Engine

from rlm_hotspot.pins import PinVault
from tests.e2e.conftest import wait_until
from tests.e2e.radius_harness import NAS_BY_VENDOR, RadiusServer, build_world, login_happened_earlier
from tests.e2e.test_radius_accounting import assert_balanced, rows
from tests.e2e.test_radius_buffered import assert_billed_once_at_the_nas_time, report_one_session

MIKROTIK = NAS_BY_VENDOR["mikrotik"]
HOTSPOTCTL = str(Path(sys.executable).with_name("hotspotctl"))


@contextmanager
def importer(server: RadiusServer, batch_size: int = 2000) -> Iterator[subprocess.Popen[bytes]]:
    """`hotspotctl radius import` on the server's spool, stopped (SIGTERM to its own PID) afterwards."""
    process = start_importer(server, batch_size)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=15)


def start_importer(server: RadiusServer, batch_size: int) -> subprocess.Popen[bytes]:
    command = [
        HOTSPOTCTL, "--config", str(server.confdir.parent / "hotspot.toml"),
        "radius", "import", "--spool", str(spool(server)), "--batch-size", str(batch_size),
    ]  # fmt: skip
    log = (server.confdir.parent / "importer.out").open("ab")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def spool(server: RadiusServer) -> Path:
    return server.confdir / "log" / "radacct" / "hotspot"


def test_a_spooled_session_is_billed_by_the_importer_as_the_hook_bills_it(
    spooling_radius_server: RadiusServer, radius_db: Engine, vault: PinVault
) -> None:
    server = spooling_radius_server
    with importer(server):
        report_one_session(server, radius_db, vault, "I1")
        wait_until(lambda: rows(radius_db, "SELECT status FROM sessions") == [("closed",)], what="the spool billed")
    assert_billed_once_at_the_nas_time(radius_db)  # as the hook bills it, inside radiusd or directly
    assert rows(radius_db, "SELECT sum(packets) FROM radius_batches") == [(4,)]
    assert list(spool(server).glob("buffer.detail*")) == []  # billed files are deleted


def test_killed_mid_batch_the_importer_resumes_and_bills_every_packet_exactly_once(
    spooling_radius_server: RadiusServer, radius_db: Engine, vault: PinVault
) -> None:
    """The importer claims files while radiusd writes them and is killed twice mid-run: every packet radiusd
    answered is billed once (none written into a claimed file after it was read, none twice)."""
    server = spooling_radius_server
    sessions = 120
    batch = build_world(radius_db, vault, count=sessions)
    classes = [server.login(n, p, nas_ip=MIKROTIK).one("Class") for n, p in zip(batch.numbers, batch.pins, strict=True)]
    login_happened_earlier(radius_db, 300)
    packets = 3 * sessions

    def committed() -> int:
        return int(rows(radius_db, "SELECT coalesce(sum(packets), 0) FROM radius_batches")[0][0])

    def send(status: str, seconds: int) -> None:
        for i, number in enumerate(batch.numbers):
            attributes = {"User_Name": number, "Acct_Session_Id": f"K{i}", "Class": classes[i]}
            reply = server.account(
                status, nas_ip=MIKROTIK, Acct_Session_Time=seconds, Acct_Delay_Time=300 - seconds, **attributes
            )
            assert reply is not None

    with importer(server, batch_size=7) as process:  # claims the file again and again while radiusd writes
        send("start", 0)
        send("interim", 120)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    send("stop", 240)
    assert committed() < packets
    with importer(server, batch_size=7) as process:
        wait_until(lambda: committed() >= packets * 3 // 4, timeout=60, what="three quarters billed")
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    with importer(server, batch_size=7):
        wait_until(lambda: committed() >= packets, timeout=60, what="every packet billed")
        wait_until(lambda: not list(spool(server).glob("buffer.detail*")), what="the work files deleted")
    assert committed() == packets
    assert rows(radius_db, "SELECT status, seconds, charged, count(*) FROM sessions GROUP BY 1, 2, 3") == [
        ("closed", 240, 8, sessions)  # 4 started minutes at 1.20/hour, each session
    ]
    assert rows(radius_db, "SELECT count(*), sum(amount) FROM ledger WHERE cause = 'time'") == [
        (2 * sessions, -8 * sessions)  # interim (2 minutes) and stop (2 more), never twice
    ]
    ranges = rows(radius_db, "SELECT spool_file, first_byte, end_byte FROM radius_batches ORDER BY 1, 2")
    assert all(a[0] != b[0] or a[2] <= b[1] for a, b in pairwise(ranges))  # no byte twice
    assert_balanced(radius_db)


def test_after_an_accounting_on_its_guests_log_in_again_before_the_importer_bills_it(
    spooling_radius_server: RadiusServer, radius_db: Engine, vault: PinVault
) -> None:
    """Buffered, the Accounting-On is answered before it is billed: a reboot storm's logins must not be
    refused "in use on another device" because of the sessions it ended (bench/reboot_storm.py)."""
    server = spooling_radius_server
    batch = build_world(radius_db, vault)
    number, pin = batch.numbers[0], batch.pins[0]
    first = server.login(number, pin, nas_ip=MIKROTIK)
    assert first.accepted
    login_happened_earlier(radius_db, 60)  # the buffer's times are whole seconds: the reboot comes later
    start = {"User_Name": number, "Acct_Session_Time": 0, "Acct_Delay_Time": 30, "Class": first.one("Class")}
    assert server.account("start", nas_ip=MIKROTIK, Acct_Session_Id="R1", **start) is not None
    assert not server.login(number, pin, nas_ip=MIKROTIK).accepted  # its one slot is taken
    assert server.account("on", nas_ip=MIKROTIK) is not None  # spooled: no importer runs yet
    again = server.login(number, pin, nas_ip=MIKROTIK)
    assert again.accepted
    restart = {"User_Name": number, "Acct_Session_Time": 0, "Class": again.one("Class")}
    assert server.account("start", nas_ip=MIKROTIK, Acct_Session_Id="R2", **restart) is not None
    with importer(server):
        wait_until(lambda: rows(radius_db, "SELECT sum(packets) FROM radius_batches") == [(3,)], what="billed")
    assert rows(radius_db, "SELECT acct_session_id, status, terminate_cause FROM sessions ORDER BY id") == [
        ("R1", "closed", "NAS-Reboot"),
        ("R2", "open", None),
    ]
    assert_balanced(radius_db)
