"""radiusd restarted under load loses and double-bills nothing (docs/operations.md, "radiusd's memory").

A radiusd that grows is restarted: systemd kills it at `MemoryMax=` (SIGKILL) and starts it again, or an
operator restarts it (SIGTERM). A NAS keeps sending meanwhile, several requests in flight, and retransmits
each request that was not answered, unchanged (same id and authenticator), until it is: what the old radiusd
billed or spooled but did not answer comes again to a radiusd that has no duplicate cache. Each session is a
login, then Start, Interim and Stop reported as late as `login_happened_earlier` says; radiusd is killed -9
and then stopped with SIGTERM, each time started again on the same config dir, ports and spool, while the
NAS sends. Every login is accepted, every session is charged exactly what it used, once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path

import pytest
from pyrad import packet
from pyrad.client import Timeout
from sqlalchemy import Engine

from rlm_hotspot.pins import PinVault
from tests.e2e.conftest import wait_until
from tests.e2e.radius_harness import (
    NAS_BY_VENDOR,
    RadiusServer,
    Reply,
    build_world,
    decoded,
    importer,
    login_happened_earlier,
    start_again,
    start_radiusd,
)
from tests.e2e.test_radius_accounting import assert_balanced, rows
from tests.e2e.test_radius_power_cut import kill_hard, spooling_radiusd

MIKROTIK = NAS_BY_VENDOR["mikrotik"]
DROP_IN = Path(__file__).parents[2] / "deploy" / "systemd" / "freeradius.service.d" / "memory.conf"
WAVES, SESSIONS_A_WAVE, IN_FLIGHT = 4, 12, 6
REQUESTS = WAVES * SESSIONS_A_WAVE * 4  # a login, Start, Interim, Stop a session
#: each session: 601 s (11 started minutes at 1.20/hour: 22) and 3 MB (0.10/MB: 30)
CHARGE = 22 + 30


class Nas:
    """A NAS: sends a request and retransmits it unchanged every second until it is answered; counts the
    answers, so that the test restarts radiusd at points of the load, not of the clock."""

    def __init__(self, server: RadiusServer) -> None:
        self.server = server  # for the ports and the secret, which a restart keeps
        self.answered = 0
        self.retransmits = 0
        self.finished = False  # the load ended (or failed): nothing more will be answered
        self.changed = threading.Condition()

    def send(self, request: packet.Packet) -> Reply:
        client = self.server.client(timeout=1.0, retries=1)
        for _ in range(120):
            try:
                reply = decoded(client.SendPacket(request))
            except Timeout:
                with self.changed:
                    self.retransmits += 1
                continue
            with self.changed:
                self.answered += 1
                self.changed.notify_all()
            return reply
        pytest.fail("a request unanswered for two minutes")

    def wait_for(self, answered: int) -> None:
        with self.changed:
            self.changed.wait_for(lambda: self.answered >= answered or self.finished, timeout=120)
            assert self.answered >= answered, "the NAS stalled"

    def finish(self) -> None:
        with self.changed:
            self.finished = True
            self.changed.notify_all()


def run_sessions(nas: Nas, numbers: list[str], pins: list[str], radius_db: Engine) -> None:
    """WAVES waves of logins then accounting, IN_FLIGHT requests at a time."""
    try:
        with ThreadPoolExecutor(IN_FLIGHT) as pool:
            for wave in range(WAVES):
                run_wave(
                    nas, pool, range(wave * SESSIONS_A_WAVE, (wave + 1) * SESSIONS_A_WAVE), numbers, pins, radius_db
                )
    finally:
        nas.finish()


def run_wave(
    nas: Nas, pool: ThreadPoolExecutor, cards: range, numbers: list[str], pins: list[str], radius_db: Engine
) -> None:
    """The cards' logins, then each session's Start, Interim and Stop, as a NAS reports them late."""
    server = nas.server

    def login(i: int) -> object:
        mac = f"02-00-00-00-00-{i:02X}"
        reply = nas.send(server.login_request(numbers[i], pins[i], nas_ip=MIKROTIK, Calling_Station_Id=mac))
        assert reply.accepted, f"card {i}: {reply.attributes.get('Reply-Message')}"
        return reply.one("Class")

    classes = dict(zip(cards, pool.map(login, cards), strict=True))
    login_happened_earlier(radius_db, 601, [numbers[i] for i in cards])  # buffered, the last wave's may wait too

    def report(i: int) -> None:
        ids = {"User_Name": numbers[i], "Acct_Session_Id": f"R{i}", "Class": classes[i]}
        for status, counters in (
            ("start", {"Acct_Session_Time": 0, "Acct_Delay_Time": 601}),
            ("interim", {"Acct_Session_Time": 300, "Acct_Delay_Time": 301, "Acct_Output_Octets": 2_000_000}),
            ("stop", {"Acct_Session_Time": 601, "Acct_Input_Octets": 200_000, "Acct_Output_Octets": 2_800_000}),
        ):
            nas.send(server.account_request(status, nas_ip=MIKROTIK, **ids, **counters))

    list(pool.map(report, cards))


@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "direct"])
def test_radiusd_restarted_under_load_loses_and_double_bills_nothing(
    radius_database: str, key_file: Path, radius_db: Engine, vault: PinVault, buffered: bool
) -> None:
    sessions = WAVES * SESSIONS_A_WAVE
    batch = build_world(radius_db, vault, traffic_price=10, count=sessions)
    with spooling_radiusd(radius_database, key_file) as (workdir, settings):
        server = start_radiusd(workdir, settings, buffered=buffered)
        try:
            with importer(server) if buffered else nullcontext(), ThreadPoolExecutor(1) as load:
                nas = Nas(server)  # the importer, its own unit, runs on through the restarts
                done = load.submit(run_sessions, nas, batch.numbers, batch.pins, radius_db)
                nas.wait_for(REQUESTS // 3)
                kill_hard(server.process)  # systemd's MemoryMax=: the kernel kills it
                server = start_again(server)
                nas.wait_for(2 * REQUESTS // 3)
                server.stop()  # systemctl restart: SIGTERM
                server = start_again(server)
                done.result()
                if buffered:
                    wait_until(
                        lambda: not list(server.spool.glob("buffer.detail*")), timeout=60, what="the spool billed"
                    )
        finally:
            server.stop()

    assert nas.retransmits > 0  # the restarts came under load: requests went unanswered and were sent again
    assert rows(radius_db, "SELECT status, seconds, charged, count(*) FROM sessions GROUP BY 1, 2, 3") == [
        ("closed", 601, CHARGE, sessions)
    ]
    assert rows(
        radius_db, "SELECT count(DISTINCT session_id), -sum(amount) FROM ledger WHERE cause IN ('time', 'traffic')"
    ) == [(sessions, CHARGE * sessions)]
    assert rows(radius_db, "SELECT count(*) FROM ledger GROUP BY idempotency_key HAVING count(*) > 1") == []
    assert rows(radius_db, "SELECT count(*) FROM quarantine") == [(0,)]
    assert_balanced(radius_db)


@pytest.mark.parametrize("scheduled", [False, True], ids=["as-shipped", "scheduled-restart-uncommented"])
def test_the_memory_drop_in_is_read_whole_by_systemd_on_debians_freeradius_unit(
    tmp_path: Path, scheduled: bool
) -> None:
    """deploy/systemd/freeradius.service.d/memory.conf on Debian's own unit: systemd knows every key of it, the
    commented scheduled restart's too (no systemd runs here: the kill and the restart it orders are the test's
    above)."""
    unit = Path("/lib/systemd/system/freeradius.service")
    if not unit.exists() or shutil.which("systemd-analyze") is None:
        pytest.skip("Debian's freeradius and systemd are not installed")
    shutil.copy(unit, tmp_path)
    (tmp_path / "freeradius.service.d").mkdir()
    text = DROP_IN.read_text()
    if scheduled:
        text = text.replace("#RuntimeMaxSec=", "RuntimeMaxSec=").replace("#RuntimeRandomized", "RuntimeRandomized")
    (tmp_path / "freeradius.service.d" / DROP_IN.name).write_text(text)
    verified = subprocess.run(
        ["systemd-analyze", "verify", "freeradius.service"],
        env={**os.environ, "SYSTEMD_UNIT_PATH": f"{tmp_path}:"},  # the trailing colon: and the usual paths
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stderr
    assert DROP_IN.name not in verified.stderr  # an unknown key or a bad value is only a warning
    assert ("RuntimeMaxSec=7d" in text.splitlines()) is scheduled  # the schedule was read
