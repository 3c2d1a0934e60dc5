"""Two of every node on one PostgreSQL: two radiusd+rlm_hotspot, two portals, two workers, two importers.

Every node is a real process on a loopback high port, started as the single-node tests start one
(tests/e2e/radius_harness.py, the portal and nfacctd helpers), all against one database of the test
cluster. Each test runs twice (`route`): the nodes connected to the cluster itself, and through a
pgbouncer in transaction pooling in front of it (tests/multinode/pgbouncer.py).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from devtools.cluster import PrivateCluster
from rlm_hotspot.radius import config as radconf
from tests.e2e.conftest import free_udp_port  # noqa: F401 - a fixture of the e2e tier, reused
from tests.e2e.radius_harness import RadiusServer, shared_dir, start_radiusd, write_settings
from tests.multinode.pgbouncer import PGBOUNCER, pgbouncer, through

HOTSPOTCTL = str(Path(sys.executable).with_name("hotspotctl"))


@dataclass(frozen=True)
class Route:
    """How the nodes reach the test cluster: directly, or through pgbouncer (transaction pooling)."""

    address: str | None = None  # pgbouncer's host:port
    role: str = "postgres"

    @property
    def pooled(self) -> bool:
        return self.address is not None

    def url(self, database_url: str) -> str:
        """The URL a node is configured with for a database of the test cluster."""
        return database_url if self.address is None else through(database_url, self.address, self.role)


POOLED_ROLE = "hotspot_node"  # the nodes' role behind pgbouncer: its timeout and time zone are set on it


@pytest.fixture(scope="module", params=["direct", "pgbouncer"])
def route(request: pytest.FixtureRequest, pg_cluster: PrivateCluster) -> Iterator[Route]:
    """Every multi-node test runs twice: nodes connected to PostgreSQL, and through pgbouncer."""
    if request.param == "direct":
        yield Route()
        return
    if not Path(PGBOUNCER).exists():
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer)")
    engine = create_engine(pg_cluster.url("postgres"))
    with engine.begin() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": POOLED_ROLE}).first()
        if exists is None:
            conn.execute(text(f"CREATE ROLE {POOLED_ROLE} LOGIN SUPERUSER"))
        conn.execute(text(f"ALTER ROLE {POOLED_ROLE} SET statement_timeout = '3s'"))
        conn.execute(text(f"ALTER ROLE {POOLED_ROLE} SET timezone = 'UTC'"))
    engine.dispose()
    with pgbouncer(pg_cluster, free_tcp_port(), users=("postgres", POOLED_ROLE)) as address:
        yield Route(address, POOLED_ROLE)


def settings_file(workdir: Path, route: Route, database_url: str, key_file: Path) -> Path:
    """radiusd's settings file for a node on `route`."""
    path = write_settings(workdir, route.url(database_url), key_file)
    if route.pooled:
        path.write_text(path.read_text().replace("[database]\n", "[database]\ntransaction_pooling = true\n", 1))
    return path


@pytest.fixture(scope="module")
def radius_pair(route: Route, radius_database: str, key_file: Path) -> Iterator[tuple[RadiusServer, RadiusServer]]:
    """Two radiusd with rlm_hotspot, a NAS's primary and secondary, on one database."""
    if shutil.which(radconf.RADIUSD) is None:
        pytest.skip("freeradius is not installed (apt-get install freeradius freeradius-python3)")
    servers = []
    workdirs = []
    try:
        for name in ("a", "b"):
            workdir = shared_dir(f"hotspot-node-{name}-")
            workdirs.append(workdir)
            servers.append(start_radiusd(workdir, settings_file(workdir, route, radius_database, key_file)))
        yield servers[0], servers[1]
    finally:
        for server in servers:
            server.stop()
        for workdir in workdirs:
            shutil.rmtree(workdir, ignore_errors=True)


def node_environment(route: Route, database_url: str, key_file: Path, **extra: str) -> dict[str, str]:
    """What a hotspotctl node process is started with: the settings by environment, no settings file."""
    return {
        **os.environ,
        "HOTSPOT_CONFIG": os.devnull,
        "HOTSPOT_DATABASE_URL": route.url(database_url),
        "HOTSPOT_DATABASE_TRANSACTION_POOLING": "true" if route.pooled else "false",
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
