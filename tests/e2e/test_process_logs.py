"""The long-running processes' logs, from real processes: `--log-format json` gives one JSON object per line
(gunicorn's own lines too), and a database outage under the worker is one error line, never a traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from devtools.cluster import PrivateCluster, temporary_cluster
from rlm_hotspot.pins import PinVault
from tests.conftest import prepare_database
from tests.e2e.test_portal_gunicorn import free_port
from tests.portal.conftest import SECRET, make_world

HOTSPOTCTL = str(Path(sys.executable).with_name("hotspotctl"))


def json_lines(path: Path) -> list[dict[str, object]]:
    """Every line of a log, each a JSON object with the four fields every line has."""
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= entry.keys(), entry
    return entries


def wait_for(log: Path, found: Callable[[list[dict[str, object]]], bool], process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while not found(json_lines(log)):
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)


def stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=30)


@pytest.fixture
def own_cluster() -> Iterator[PrivateCluster]:
    """A cluster of this test's own, to stop: the other tests' database stays up."""
    with temporary_cluster("hotspot-logs-pg-") as (cluster, _root):
        yield cluster


def test_a_database_outage_is_one_error_line_in_the_workers_json_log(
    own_cluster: PrivateCluster, key_file: Path, tmp_path: Path
) -> None:
    url = prepare_database(own_cluster, "hotspot")
    log = tmp_path / "worker.log"
    env = {**os.environ, "HOTSPOT_CONFIG": os.devnull, "HOTSPOT_DATABASE_URL": url,
           "HOTSPOT_PIN_KEY_FILE": str(key_file)}  # fmt: skip
    with log.open("wb") as stderr:
        worker = subprocess.Popen([HOTSPOTCTL, "worker", "--interval", "0.5", "--log-format", "json"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=stderr)  # fmt: skip
    try:
        wait_for(log, lambda lines: any(str(e["message"]).startswith("worker started") for e in lines), worker)
        time.sleep(1)  # a cycle or two on a healthy database
        own_cluster.stop(mode="immediate")
        wait_for(log, lambda lines: any(e["level"] == "ERROR" for e in lines), worker)
        own_cluster.start()
        wait_for(log, lambda lines: any(e["message"] == "database reachable again" for e in lines), worker)
    finally:
        assert stop(worker) == 0
    entries = json_lines(log)
    errors = [e for e in entries if e["level"] == "ERROR"]
    assert errors and all(str(e["message"]).startswith("database unavailable (") for e in errors), errors
    assert all(e["logger"] == "rlm_hotspot.worker" and "exception" not in e for e in errors)
    assert "Traceback" not in log.read_text()
    assert entries[-1]["message"] == "worker stopped"


def test_the_portal_and_gunicorn_write_json_lines(
    committed: Engine, vault: PinVault, database_url: str, key_file: Path, tmp_path: Path
) -> None:
    make_world(committed, vault, count=1)
    port = free_port()
    log = tmp_path / "portal.log"
    env = {**os.environ, "HOME": str(tmp_path), "HOTSPOT_CONFIG": os.devnull, "HOTSPOT_DATABASE_URL": database_url,
           "HOTSPOT_PIN_KEY_FILE": str(key_file), "HOTSPOT_PORTAL_SECRET_KEY": SECRET,
           "HOTSPOT_PORTAL_URL": f"http://127.0.0.1:{port}/", "HOTSPOT_LOG_FORMAT": "json"}  # fmt: skip
    with log.open("wb") as stderr:
        command = ["portal", "run", "--hotspot", "cafe", "--bind", f"127.0.0.1:{port}", "--plain-http", "--workers=1"]
        portal = subprocess.Popen([HOTSPOTCTL, *command], env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        wait_for(log, lambda lines: any("Booting worker" in str(e["message"]) for e in lines), portal)
    finally:
        assert stop(portal) == 0
    loggers = {e["logger"] for e in json_lines(log)}
    assert "gunicorn.error" in loggers, loggers


def test_the_accounting_importer_takes_its_units_log_format_and_logs_an_outage_without_a_traceback(
    own_cluster: PrivateCluster, key_file: Path, tmp_path: Path
) -> None:
    """`hotspot-radius-import.service` says `Environment=HOTSPOT_LOG_FORMAT=json` gives JSON lines: `radius import`
    reads it as the other long-running commands do, and a database it cannot reach is error lines, not a trace."""
    url = prepare_database(own_cluster, "hotspot")
    spool = tmp_path / "spool"
    spool.mkdir()
    log = tmp_path / "import.log"
    env = {**os.environ, "HOTSPOT_CONFIG": os.devnull, "HOTSPOT_DATABASE_URL": url,
           "HOTSPOT_PIN_KEY_FILE": str(key_file), "HOTSPOT_LOG_FORMAT": "json"}  # fmt: skip
    own_cluster.stop(mode="immediate")  # its first pass (pruning old batch records) finds the database away
    with log.open("wb") as stderr:
        command = [HOTSPOTCTL, "radius", "import", "--spool", str(spool)]
        importer = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        wait_for(log, lambda lines: any(e["level"] == "ERROR" for e in lines), importer)
        own_cluster.start()
    finally:
        assert stop(importer) == 0
    entries = json_lines(log)
    assert any(str(e["message"]).startswith("importer started") for e in entries), entries
    errors = [e for e in entries if e["level"] == "ERROR"]
    assert errors and all(str(e["message"]).startswith("database unavailable") for e in errors), errors
    assert all("exception" not in e for e in errors) and "Traceback" not in log.read_text()
