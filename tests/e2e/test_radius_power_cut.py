"""A power cut of the billing host, buffered accounting: what the Accounting-Response promised is kept.

radiusd's detail module writes an entry and answers; it never fsyncs (FreeRADIUS 3.2.1, rlm_detail), and the
importer fdatasyncs the file only at each poll, so a power cut loses the tail written since the last sync: the
file ends earlier, possibly in the middle of an entry. The cut is played here with the real components: a real
radiusd answers the packets, then radiusd and the importer are killed (-9), the detail file is cut inside an
entry, radiusd starts again on the same spool and appends to that file, the importer bills it, the worker runs
its pass later. Nothing is billed twice, every entry that survived is billed, a lost Interim costs nothing and a
session whose Stop was lost is closed by the worker at the last counters that survived.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from rlm_hotspot.pins import PinVault
from rlm_hotspot.radius import config as radconf
from rlm_hotspot.services.access import Policy
from rlm_hotspot.worker.cycle import Worker
from tests.e2e.conftest import wait_until
from tests.e2e.radius_harness import (
    NAS_BY_VENDOR,
    RadiusServer,
    build_world,
    importer,
    login_happened_earlier,
    shared_dir,
    start_radiusd,
    write_settings,
)
from tests.e2e.test_radius_accounting import assert_balanced, rows
from tests.gates.labdb import transaction

MIKROTIK = NAS_BY_VENDOR["mikrotik"]
#: The sessions, by what the cut does to them (1.20/hour per started minute: 2 per minute).
STOP_LOST, INTERIM_LOST, TAIL_SURVIVES, TORN, DONE = range(5)


@contextmanager
def spooling_radiusd(radius_database: str, key_file: Path) -> Iterator[tuple[Path, Path]]:
    """A workdir and settings for a radiusd of this test's own (it is killed and started again)."""
    if shutil.which(radconf.RADIUSD) is None:
        pytest.skip("freeradius is not installed (apt-get install freeradius freeradius-python3)")
    workdir = shared_dir("hotspot-radius-power-cut-")
    try:
        yield workdir, write_settings(workdir, radius_database, key_file)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def kill_hard(process: subprocess.Popen[bytes]) -> None:
    """kill -9 of a process this test started (what a power cut does to it)."""
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def committed(engine: Engine) -> int:
    return int(rows(engine, "SELECT coalesce(sum(packets), 0) FROM radius_batches")[0][0])


@pytest.mark.parametrize("rename_lost", [False, True], ids=["file-cut-short", "claim-lost-too"])
def test_a_power_cut_loses_only_the_unsynced_tail_and_bills_nothing_twice(
    radius_database: str, key_file: Path, radius_db: Engine, vault: PinVault, rename_lost: bool
) -> None:
    """`claim-lost-too`: the disk lost the importer's rename and delete of the file it billed as well (metadata
    written back later than the database's commit), and so everything radiusd wrote after it: the billed file
    is back as radiusd's live file and is billed again, charging nothing twice."""
    batch = build_world(radius_db, vault, count=5)
    with spooling_radiusd(radius_database, key_file) as (workdir, settings):
        server = start_radiusd(workdir, settings, buffered=True)
        try:
            logins = zip(batch.numbers, batch.pins, strict=True)
            classes = [server.login(number, pin, nas_ip=MIKROTIK).one("Class") for number, pin in logins]
            login_happened_earlier(radius_db, 900)

            def send(to: RadiusServer, session: int, status: str, seconds: int) -> None:
                ids = {"User_Name": batch.numbers[session], "Acct_Session_Id": f"P{session}", "Class": classes[session]}
                delay = 900 - seconds  # each packet sent when its session was that far in (the login: 900 s ago)
                assert to.account(status, nas_ip=MIKROTIK, Acct_Session_Time=seconds, Acct_Delay_Time=delay, **ids)

            for session in range(5):  # billed and committed before the cut
                send(server, session, "start", 0)
                send(server, session, "interim", 120)
            send(server, DONE, "stop", 180)
            live = server.spool / "buffer.detail"
            billed_file = live.read_bytes()
            with importer(server, batch_size=3) as process:
                wait_until(lambda: not list(server.spool.glob("buffer.detail*")), timeout=60, what="the file billed")
                kill_hard(process)
            assert committed(radius_db) == 11
            # answered, in the page cache, not billed: the cut keeps the first and tears the second
            send(server, TAIL_SURVIVES, "interim", 240)
            survives = live.stat().st_size
            send(server, TORN, "interim", 240)
            torn_at = survives + (live.stat().st_size - survives) // 2
            send(server, STOP_LOST, "stop", 300)
            send(server, INTERIM_LOST, "interim", 240)
            send(server, TAIL_SURVIVES, "stop", 300)
            kill_hard(server.process)
        finally:
            server.stop()
        if rename_lost:
            live.write_bytes(billed_file)
        else:
            os.truncate(live, torn_at)  # what the disk holds after the cut: the file ends inside TORN's entry

        server = start_radiusd(workdir, settings, buffered=True)  # the host is back: radiusd appends to that file
        try:
            send(server, INTERIM_LOST, "interim", 360)  # the NAS goes on: the next Interim, then the Stop
            send(server, INTERIM_LOST, "stop", 480)
            send(server, TORN, "stop", 480)
            with importer(server, batch_size=3):
                wait_until(lambda: not list(server.spool.glob("buffer.detail*")), timeout=60, what="the file billed")
        finally:
            server.stop()
        importer_log = (workdir / "importer.out").read_text(errors="replace")

    # every entry that survived whole billed once; the torn one not (the lost claim: all billed entries again)
    assert committed(radius_db) == 11 + (11 if rename_lost else 1) + 3
    assert ("torn entry" in importer_log) is not rename_lost
    later = datetime.now(UTC) + timedelta(days=1)
    Worker(transaction=lambda: transaction(radius_db), policy=Policy(), close_gate=lambda ip, mac: None,
           clock=lambda: later).run_cycle()  # fmt: skip
    survived = 120 if rename_lost else 240  # TAIL_SURVIVES's last Interim that the disk kept
    assert rows(
        radius_db, "SELECT acct_session_id, status, seconds, charged, terminate_cause FROM sessions ORDER BY 1"
    ) == [
        ("P0", "closed", 120, 4, "Stale"),  # STOP_LOST: closed by the worker at the Interim that survived
        ("P1", "closed", 480, 16, "Stop"),  # INTERIM_LOST: the later packets restate it all
        ("P2", "closed", survived, survived // 30, "Stale"),  # TAIL_SURVIVES: closed at what survived
        ("P3", "closed", 480, 16, "Stop"),  # TORN: its torn Interim lost (not read with the next), the Stop bills all
        ("P4", "closed", 180, 6, "Stop"),  # DONE: billed before the cut, once
    ]
    assert rows(
        radius_db,
        "SELECT s.acct_session_id, -sum(l.amount) FROM ledger l JOIN sessions s ON s.id = l.session_id "
        "GROUP BY 1 ORDER BY 1",
    ) == [("P0", 4), ("P1", 16), ("P2", survived // 30), ("P3", 16), ("P4", 6)]
    assert rows(radius_db, "SELECT count(*) FROM ledger GROUP BY idempotency_key HAVING count(*) > 1") == []
    assert_balanced(radius_db)
