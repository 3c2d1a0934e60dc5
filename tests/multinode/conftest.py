"""Two of every node on one PostgreSQL: two radiusd+rlm_hotspot, two portals, two workers, two importers.

Every node is a real process on a loopback high port, started as the single-node tests start one
(tests/e2e/radius_harness.py, the portal and nfacctd helpers), all against one database of the test
cluster. `node_url` turns a database's URL into the address the nodes connect to it by: the cluster
itself, or (tests/multinode/test_pgbouncer.py) a pgbouncer in transaction pooling in front of it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rlm_hotspot.radius import config as radconf
from tests.e2e.conftest import free_udp_port  # noqa: F401 - a fixture of the e2e tier, reused
from tests.e2e.radius_harness import RadiusServer, shared_dir, start_radiusd, write_settings

HOTSPOTCTL = str(Path(sys.executable).with_name("hotspotctl"))


@pytest.fixture(scope="module")
def node_url() -> Callable[[str], str]:
    """How the nodes of this module reach a database of the test cluster: directly (overridden for pgbouncer)."""
    return lambda url: url


@pytest.fixture(scope="module")
def radius_pair(
    node_url: Callable[[str], str], radius_database: str, key_file: Path
) -> Iterator[tuple[RadiusServer, RadiusServer]]:
    """Two radiusd with rlm_hotspot, a NAS's primary and secondary, on one database."""
    if shutil.which(radconf.RADIUSD) is None:
        pytest.skip("freeradius is not installed (apt-get install freeradius freeradius-python3)")
    servers = []
    workdirs = []
    try:
        for name in ("a", "b"):
            workdir = shared_dir(f"hotspot-node-{name}-")
            workdirs.append(workdir)
            servers.append(start_radiusd(workdir, write_settings(workdir, node_url(radius_database), key_file)))
        yield servers[0], servers[1]
    finally:
        for server in servers:
            server.stop()
        for workdir in workdirs:
            shutil.rmtree(workdir, ignore_errors=True)


def node_environment(database_url: str, key_file: Path, **extra: str) -> dict[str, str]:
    """What a hotspotctl node process is started with: the settings by environment, no settings file."""
    return {
        **os.environ,
        "HOTSPOT_CONFIG": "",
        "HOTSPOT_DATABASE_URL": database_url,
        "HOTSPOT_PIN_KEY_FILE": str(key_file),
        **extra,
    }


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_tcp(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, log.read_text(errors="replace")[-3000:]
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            assert time.monotonic() < deadline, f"nothing listens on {port}:\n{log.read_text(errors='replace')}"
            time.sleep(0.1)


def stop(process: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    """SIGTERM exactly this process and wait for it; its exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
