"""Generic helpers for end-to-end tests: free local UDP ports, and processes the test started itself.

Only PIDs started here are ever signalled (each in its own session, so its process group is ours too);
nothing is ever killed by name.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.processes import Processes
from rlm_hotspot.radius import config as radconf
from tests.e2e.radius_harness import shared_dir


def require_binaries(*names: str) -> None:
    """Skip the test, saying which program is missing."""
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (apt-get install pmacct softflowd)")


def udp_port_in_use(port: int) -> bool:
    """True when a socket is bound to the UDP port (nfacctd uses SO_REUSEPORT: a second one starts silently)."""
    listed = subprocess.run(["ss", "-ulnH", f"sport = :{port}"], capture_output=True, text=True, check=True)
    return bool(listed.stdout.strip())


@pytest.fixture
def free_udp_port() -> int:
    """A high UDP port on 127.0.0.1 that nothing is bound to right now."""
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port > 20000 and not udp_port_in_use(port):
            return port
    pytest.fail("no free UDP port found")


@pytest.fixture
def processes() -> Iterator[Processes]:
    tracker = Processes()
    yield tracker
    tracker.kill_all()


def wait_until(condition, timeout: float = 10.0, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="session")
def readable_venv() -> Iterator[Path]:
    """The test run's packages, staged where Debian's radiusd user (freerad) can read them: `radius install`
    writes a module that loads them, and the checkout may be under a 0700 directory (root's home)."""
    workdir = shared_dir("hotspot-venv-")
    yield radconf.stage_python(workdir / "venv", Path(sys.prefix))
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def raddb() -> Iterator[Path]:
    """A copy of the system's FreeRADIUS config, pointing at itself."""
    if not radconf.SYSTEM_RADDB.is_dir() or shutil.which(radconf.RADIUSD) is None:
        pytest.skip("Debian's freeradius is not installed")
    workdir = shared_dir("hotspot-raddb-")
    copy = workdir / "raddb"
    subprocess.run(["cp", "-a", str(radconf.SYSTEM_RADDB), str(copy)], check=True)  # keeps 0640 freerad
    conf = copy / "radiusd.conf"
    conf.write_text(conf.read_text().replace(f"raddbdir = {radconf.SYSTEM_RADDB}", f"raddbdir = {copy}"))
    yield copy
    shutil.rmtree(workdir, ignore_errors=True)
