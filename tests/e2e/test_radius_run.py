"""`hotspotctl radius run` itself: the development radiusd it starts serves card logins."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine

from rlm_hotspot.pins import PinVault
from rlm_hotspot.radius import config as radconf
from tests.e2e.conftest import wait_until
from tests.e2e.radius_harness import (
    NAS_BY_VENDOR,
    SECRET,
    RadiusServer,
    build_world,
    free_udp_ports,
    shared_dir,
    write_settings,
)


def test_hotspotctl_radius_run_serves_logins(
    radius_db: Engine, radius_database: str, key_file: Path, vault: PinVault
) -> None:
    if shutil.which(radconf.RADIUSD) is None:
        pytest.skip("freeradius is not installed (apt-get install freeradius freeradius-python3)")
    batch = build_world(radius_db, vault)
    workdir = shared_dir("hotspot-radius-run-")
    settings = write_settings(workdir, radius_database, key_file)
    auth_port, acct_port = free_udp_ports(2)
    command = [
        str(Path(sys.executable).with_name("hotspotctl")),
        "--config", str(settings),
        "radius", "run", "--threaded",
        "--confdir", str(workdir / "radius"),
        "--auth-port", str(auth_port), "--acct-port", str(acct_port),
        "--local-secret", SECRET,
    ]  # fmt: skip
    log = workdir / "run.out"
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
                                   env={**os.environ, "HOTSPOT_CONFIG": ""})  # fmt: skip
    server = RadiusServer(process, workdir / "radius", log, auth_port, acct_port)
    try:
        wait_until(lambda: radconf.READY_LINE in server.log_text() or process.poll() is not None, timeout=30)
        assert process.poll() is None, server.log_text()[-3000:]
        reply = server.login(batch.numbers[0], batch.pins[0], nas_ip=NAS_BY_VENDOR["mikrotik"])
        assert reply.accepted, reply
        assert int(reply.one("Session-Timeout")) > 0  # type: ignore[call-overload]
        assert not server.login(batch.numbers[1], "WRONGPIN9", nas_ip=NAS_BY_VENDOR["mikrotik"]).accepted
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
