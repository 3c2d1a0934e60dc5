"""The FreeRADIUS module's Prometheus metrics, scraped from inside a real radiusd: what the hooks answered,
why logins were refused, database faults, hook latency, the buffered accounting's backlog and lag; and the
metrics of the importer that bills that buffer (`hotspotctl radius import --metrics-port`)."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from devtools.ha import free_tcp_ports
from rlm_hotspot.pins import PinVault
from rlm_hotspot.radius import config as radconf
from tests.e2e.conftest import wait_until
from tests.e2e.radius_harness import (
    NAS_BY_VENDOR,
    RadiusServer,
    Scrape,
    build_world,
    shared_dir,
    start_radiusd,
    write_settings,
)
from tests.e2e.test_radius_accounting import rows

pytestmark = pytest.mark.e2e
MIKROTIK = NAS_BY_VENDOR["mikrotik"]


def value(scrape: Scrape, name: str, **labels: str) -> float:
    return scrape.get((name, frozenset(labels.items())), 0.0)


def grew(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def test_logins_refusals_and_accounting_are_counted(
    radius_server: RadiusServer, radius_db: Engine, vault: PinVault
) -> None:
    batch = build_world(radius_db, vault)
    before = radius_server.metrics()  # radiusd is idle here: the scrape proves the thread gets the GIL
    accepted = radius_server.login(batch.numbers[0], batch.pins[0], nas_ip=MIKROTIK)
    assert accepted.accepted
    assert not radius_server.login(batch.numbers[1], "000000", nas_ip=MIKROTIK).accepted
    ids = {"User_Name": batch.numbers[0], "Acct_Session_Id": "M1", "Class": accepted.one("Class")}
    assert radius_server.account("start", nas_ip=MIKROTIK, **ids, Acct_Session_Time=0) is not None
    assert radius_server.account("interim", nas_ip=MIKROTIK, **ids, Acct_Session_Time=30) is not None
    after = radius_server.metrics()

    requests = "hotspot_radius_requests_total"
    assert grew(before, after, requests, hook="authorize", outcome="checked") == 2  # the first of two calls
    assert grew(before, after, requests, hook="authorize", outcome="accept") == 1
    assert grew(before, after, requests, hook="authorize", outcome="reject") == 1
    assert grew(before, after, requests, hook="accounting", outcome="ok") == 2
    assert grew(before, after, "hotspot_radius_refusals_total", reason="wrong_pin") == 1
    assert grew(before, after, "hotspot_radius_hook_seconds_count", hook="authorize") == 4
    assert grew(before, after, "hotspot_radius_hook_seconds_count", hook="accounting") == 2
    assert grew(before, after, "hotspot_radius_hook_seconds_bucket", hook="accounting", le="+Inf") == 2
    assert 0 < grew(before, after, "hotspot_radius_hook_seconds_sum", hook="accounting") < 2
    assert not any(name == "hotspot_radius_errors_total" and grew(before, after, name, **dict(labels))
                   for name, labels in after)  # fmt: skip
    assert value(after, "hotspot_radius_buffer_files") == 0  # not buffered: nothing ever waits


def test_a_stalled_buffer_shows_its_backlog_and_lag_until_the_importer_bills_it(
    buffered_radius_server: RadiusServer, radius_db: Engine, vault: PinVault
) -> None:
    """The module (inside radiusd) and the importer both show what waits; the importer counts what it billed."""
    server = buffered_radius_server
    batch = build_world(radius_db, vault)
    accepted = server.login(batch.numbers[0], batch.pins[0], nas_ip=MIKROTIK)
    ids = {"User_Name": batch.numbers[0], "Acct_Session_Id": "M2", "Class": accepted.one("Class")}
    before = server.importer_metrics()
    with radius_db.connect() as blocker:  # the importer's batch waits on this lock
        blocker.execute(text("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE"))
        assert server.account("start", nas_ip=MIKROTIK, **ids, Acct_Session_Time=0) is not None  # buffered
        lag = "hotspot_radius_import_backlog_oldest_age_seconds"
        wait_until(lambda: value(server.importer_metrics(), lag) >= 3, 20, "the importer's lag")
        stalled, module = server.importer_metrics(), server.metrics()
        blocker.rollback()
    assert value(stalled, "hotspot_radius_import_backlog_files") >= 1
    assert value(stalled, "hotspot_radius_import_backlog_bytes") > 100
    assert value(module, "hotspot_radius_buffer_oldest_age_seconds") >= 3  # the same files, read by radiusd
    wait_until(lambda: rows(radius_db, "SELECT status FROM sessions") == [("open",)], 20, "billing after the stall")
    wait_until(lambda: value(server.importer_metrics(), "hotspot_radius_import_backlog_bytes") == 0, 10, "drained")
    drained = server.importer_metrics()
    assert value(drained, lag) == 0
    assert grew(before, drained, "hotspot_radius_import_packets_total", outcome="billed") == 1
    assert grew(before, drained, "hotspot_radius_import_batches_total", mode="batch") == 1
    assert grew(before, drained, "hotspot_radius_import_batch_seconds_count") == 1
    assert grew(before, drained, "hotspot_radius_import_batch_seconds_sum") > 0
    assert grew(before, drained, "hotspot_radius_import_packets_total", outcome="unbilled") == 0
    assert value(drained, "hotspot_radius_import_database_errors_total", kind="unavailable") == 0
    assert grew(before, server.metrics(), "hotspot_radius_requests_total", hook="accounting", outcome="ok") == 0


def test_a_config_check_beside_the_live_server_leaves_it_the_port(radius_server: RadiusServer) -> None:
    """`freeradius -C` (systemd's ExecStartPre and ExecReload) instantiates the module too: it must not
    take the metrics port, nor complain that it cannot."""
    ok, output = radconf.check(radius_server.confdir)
    assert ok, output[-3000:]
    assert "rlm_hotspot: ready" in output
    assert "rlm_hotspot: metrics" not in output
    assert radius_server.metrics()


def test_a_metrics_port_already_taken_costs_the_metrics_only(radius_database: str, key_file: Path) -> None:
    workdir = shared_dir("hotspot-radius-taken-")
    [port] = free_tcp_ports(1)
    with socket.create_server(("127.0.0.1", port)):
        server = start_radiusd(workdir, write_settings(workdir, radius_database, key_file, metrics_port=port))
        try:
            assert f"rlm_hotspot: metrics not served: cannot listen on 127.0.0.1:{port}: Address already in use" in (
                server.log_text()
            )
            assert server.account("on", nas_ip=MIKROTIK) is not None  # RADIUS serves, and bills
        finally:
            server.stop()
            shutil.rmtree(workdir, ignore_errors=True)
