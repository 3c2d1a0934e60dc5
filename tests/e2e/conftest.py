"""Generic helpers for end-to-end tests: free local UDP ports, and processes the test started itself.

Only PIDs started here are ever signalled (each in its own session, so its process group is ours too);
nothing is ever killed by name.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.e2e.radius_harness import (  # noqa: F401 - shared fixtures
    buffered_radius_server,
    radius_database,
    radius_db,
    radius_engine,
    radius_server,
)


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


def _group_alive(pgid: int) -> bool:
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


class Processes:
    """Starts programs in their own sessions and stops exactly those, never anything else."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, args: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as output:
            process = subprocess.Popen(list(args), stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        self.started.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes], signum: int = signal.SIGINT, timeout: float = 15.0) -> None:
        """Signal the process, wait for it and for every child it forked (its process group) to exit."""
        if process.poll() is None:
            process.send_signal(signum)
        process.wait(timeout=timeout)
        deadline = time.monotonic() + timeout
        while _group_alive(process.pid) and time.monotonic() < deadline:
            time.sleep(0.05)

    def kill_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
                process.wait()
            if _group_alive(process.pid):
                os.killpg(process.pid, signal.SIGKILL)


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
