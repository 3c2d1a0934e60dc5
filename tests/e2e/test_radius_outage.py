"""PostgreSQL stops under a running radiusd: every request is still answered at once, and service comes
back by itself. Uses a private cluster of its own, so the other tests' database is never stopped."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine

from devtools.cluster import PrivateCluster
from rlm_hotspot.core.decisions import SERVICE_UNAVAILABLE as UNAVAILABLE
from rlm_hotspot.pins import PinVault
from rlm_hotspot.radius import config as radconf
from tests.conftest import prepare_database
from tests.e2e.radius_harness import (
    NAS_BY_VENDOR,
    RadiusServer,
    build_world,
    login_happened_earlier,
    shared_dir,
    start_radiusd,
    write_settings,
)

MIKROTIK = NAS_BY_VENDOR["mikrotik"]


@dataclass
class Outage:
    cluster: PrivateCluster
    engine: Engine
    server: RadiusServer


@pytest.fixture
def outage(key_file: Path) -> Iterator[Outage]:
    if shutil.which(radconf.RADIUSD) is None:
        pytest.skip("freeradius is not installed")
    workdir = shared_dir("hotspot-outage-")
    cluster = PrivateCluster(workdir / "data", port=40000 + os.getpid() % 10000)
    cluster.start()
    url = prepare_database(cluster, "hotspot")
    engine = create_engine(url)
    server = None
    try:
        server = start_radiusd(workdir, write_settings(workdir, url, key_file))
        yield Outage(cluster, engine, server)
    finally:
        if server is not None:
            server.stop()
        engine.dispose()
        cluster.destroy()
        shutil.rmtree(workdir, ignore_errors=True)


def test_radiusd_survives_a_database_outage_and_recovers_by_itself(outage: Outage, vault: PinVault) -> None:
    server = outage.server
    batch = build_world(outage.engine, vault, count=3)
    first = server.login(batch.numbers[0], batch.pins[0], nas_ip=MIKROTIK)
    assert first.accepted
    login_happened_earlier(outage.engine, 120)  # the Start comes late: the Interim-Update is sent 120 s after it
    session = {"User_Name": batch.numbers[0], "Acct_Session_Id": "O1", "Class": first.one("Class")}
    assert server.account("start", nas_ip=MIKROTIK, Acct_Session_Time=0, Acct_Delay_Time=120, **session) is not None
    outage.engine.dispose()

    outage.cluster.stop(mode="immediate")
    log_before = len(server.log_text())
    started = time.monotonic()
    for _ in range(2):
        refused = server.login(batch.numbers[1], batch.pins[1], nas_ip=MIKROTIK)
        assert not refused.accepted
        assert refused.attributes.get("Reply-Message") == [UNAVAILABLE]  # the guest is told why
        assert set(refused.attributes) <= {"Reply-Message", "Message-Authenticator"}
    assert time.monotonic() - started < 2.0
    outage_log = server.log_text()[log_before:]
    assert outage_log.count("rlm_hotspot: authorize: the login's database call failed, answering FAIL") == 2
    assert "Traceback" not in outage_log
    interim = {"Acct_Session_Time": 120, "Acct_Input_Octets": 10, "Acct_Output_Octets": 20}
    assert server.account("interim", nas_ip=MIKROTIK, timeout=1.0, **interim, **session) is None  # FAIL: no answer
    assert "accounting: database unavailable, answering FAIL" in server.log_text()
    assert "Traceback" not in server.log_text()
    assert server.process.poll() is None  # radiusd is still up

    outage.cluster.start()
    back = time.monotonic()
    while not server.login(batch.numbers[1], batch.pins[1], nas_ip=MIKROTIK).accepted:
        assert time.monotonic() - back < 5.0, "service did not come back within 5 s of PostgreSQL"
        time.sleep(0.2)
    # the NAS retransmits the interim it got no answer for: now billed (2 started minutes at 1.20/hour)
    assert server.account("interim", nas_ip=MIKROTIK, **interim, **session) is not None
    with outage.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT seconds, charged FROM sessions WHERE acct_session_id = 'O1'").one() == (
            120,
            4,
        )


def test_a_connection_that_died_in_the_pool_costs_no_request(outage: Outage, vault: PinVault) -> None:
    """PostgreSQL restarts between two requests (as a failover moves the primary while radiusd is idle):
    the module's pooled connections are dead, and the request that meets each is answered all the same,
    on a new connection, not FAILed (which refused a login well after a failover back: docs/ha.md)."""
    server = outage.server
    batch = build_world(outage.engine, vault, count=2)
    sessions = []
    for index in range(2):
        login = server.login(batch.numbers[index], batch.pins[index], nas_ip=MIKROTIK)
        assert login.accepted
        number, token = batch.numbers[index], login.one("Class")
        sessions.append({"User_Name": number, "Acct_Session_Id": f"R{index}", "Class": token})
    login_happened_earlier(outage.engine, 120)
    # a connection in each of the module's pools: the transactional one (Start), the autocommit one (Interim)
    assert server.account("start", nas_ip=MIKROTIK, Acct_Session_Time=0, Acct_Delay_Time=120, **sessions[0])
    assert server.account("interim", nas_ip=MIKROTIK, Acct_Session_Time=60, Acct_Delay_Time=60, **sessions[0])
    outage.engine.dispose()

    outage.cluster.stop(mode="immediate")
    outage.cluster.start()
    log_before = len(server.log_text())
    interim = {"Acct_Session_Time": 120, "Acct_Input_Octets": 10, "Acct_Output_Octets": 20}
    # one transmission each (a FAIL would leave it unanswered; the wait is generous, not a speed bound): the
    # autocommit engine's dead connection, then the transactional one's
    assert server.account("interim", nas_ip=MIKROTIK, timeout=5.0, **interim, **sessions[0]) is not None
    assert server.account("start", nas_ip=MIKROTIK, timeout=5.0, Acct_Session_Time=0, Acct_Delay_Time=120,
                          **sessions[1]) is not None  # fmt: skip
    log = server.log_text()[log_before:]
    assert "answering FAIL" not in log
    assert log.count("a pooled database connection was lost, trying a new one") == 2
    with outage.engine.connect() as conn:
        billed = conn.exec_driver_sql("SELECT acct_session_id, status, seconds, charged FROM sessions "
                                      "WHERE acct_session_id IN ('R0', 'R1') ORDER BY 1").all()  # fmt: skip
    assert [tuple(row) for row in billed] == [("R0", "open", 120, 4), ("R1", "open", 0, 0)]
