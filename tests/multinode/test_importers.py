"""Two flow importers (`hotspotctl flows run`) on one spool and one database never bill a file twice."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import Engine, text

from devtools.processes import Processes
from tests.db.test_flow_world import HOTSPOT
from tests.e2e.conftest import require_binaries, wait_until
from tests.e2e.test_flows_e2e import (  # noqa: F401 - `guests` is a fixture
    assert_billed_exactly,
    build_pcap,
    collector_spec,
    guests,
    replay,
    start_nfacctd,
)
from tests.multinode.conftest import HOTSPOTCTL, Route, node_environment


def imported_batches(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return tuple(conn.execute(text("SELECT count(*), count(DISTINCT name) FROM flow_batches")).one())  # type: ignore[return-value]


def test_two_importers_on_one_spool_bill_each_file_once(
    route: Route, database_url: str, key_file: Path, committed: Engine,
    guests: dict[str, tuple[int, int]], free_udp_port: int, tmp_path: Path,  # noqa: F811 - the fixture
) -> None:  # fmt: skip
    """Both scan the spool every second while nfacctd writes into it: they meet the same files at once."""
    require_binaries("nfacctd", "softflowd")
    truth = build_pcap(tmp_path / "clients.pcap")
    spec = collector_spec(tmp_path, free_udp_port)
    processes = Processes()
    command = [HOTSPOTCTL, "flows", "run", "--hotspot", HOTSPOT, "--spool", str(spec.spool), "--settle", "0s",
               "--interval", "1s"]  # fmt: skip
    logs = [tmp_path / f"importer-{name}.log" for name in ("a", "b")]
    try:
        for log in logs:
            processes.start(command, log, stop_signal=2, env=node_environment(route, database_url, key_file))
        wait_until(lambda: all("importer started" in log.read_text() for log in logs), 30, "both importers")
        nfacctd = start_nfacctd(processes, spec, free_udp_port, tmp_path)
        replay(tmp_path / "clients.pcap", free_udp_port, 9)
        time.sleep(0.5)
        processes.stop(nfacctd)  # SIGINT flushes every cache into the spool
        assert list(spec.spool.glob("*.json")), (tmp_path / "nfacctd.log").read_text()
        wait_until(lambda: imported_batches(committed)[0] >= 2, 30, "the import")
        time.sleep(3)  # three more scans of each
    finally:
        processes.stop_all()
    outputs = [log.read_text() for log in logs]
    assert_billed_exactly(committed, truth, guests)
    count, distinct = imported_batches(committed)
    assert count == distinct == 2, outputs  # one batch per direction
    assert not list(spec.spool.glob("failed/*")), "a file was set aside as failed"
    assert not any(" ERROR " in output or "Traceback" in output for output in outputs), outputs
