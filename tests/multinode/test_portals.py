"""Two portal instances behind a load balancer: a guest's heartbeats alternate between them."""

from __future__ import annotations

import http.client
import json
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from rlm_hotspot.pins import PinVault
from tests.db.helpers import assert_ledger_balanced
from tests.e2e.test_portal_gunicorn import logged_in_cookie
from tests.multinode.conftest import HOTSPOTCTL, Route, free_tcp_port, node_environment, stop, wait_for_tcp
from tests.portal.conftest import SECRET, make_world

BEATS = 12
WRITE_DELAY_MS = 300  # each portal holds a heartbeat this long in memory before writing it


def start_portal(route: Route, database_url: str, key_file: Path, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_tcp_port()
    env = node_environment(route, database_url, key_file, HOTSPOT_PORTAL_SECRET_KEY=SECRET,
                           HOTSPOT_PORTAL_URL=f"http://127.0.0.1:{port}/",
                           HOTSPOT_PORTAL_HEARTBEAT_WRITE_DELAY_MS=str(WRITE_DELAY_MS))  # fmt: skip
    command = [HOTSPOTCTL, "portal", "run", "--hotspot", "cafe", "--bind", f"127.0.0.1:{port}", "--plain-http",
               "--workers", "1"]  # fmt: skip
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    wait_for_tcp(port, process, log)
    return process, port


def test_heartbeats_alternating_between_two_portals_bill_once(
    route: Route, database_url: str, key_file: Path, committed: Engine, vault: PinVault,
    tmp_path: Path,
) -> None:  # fmt: skip
    world = make_world(committed, vault, count=2, heartbeat_timeout=300)  # 1 minor unit a second
    portals = [start_portal(route, database_url, key_file, tmp_path / f"portal-{n}.log") for n in "ab"]
    try:
        token, cookie = logged_in_cookie(committed, vault, world)
        headers = {"Cookie": f"hotspot_portal={cookie}", "X-CSRF-Token": "csrf-1", "Content-Length": "0"}
        for beat in range(BEATS):
            _, port = portals[beat % 2]
            browser = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            browser.request("POST", "/heartbeat", headers=headers)
            response = browser.getresponse()
            assert response.status == 200, response.read()
            assert json.loads(response.read())["open"]
            browser.close()
            last_beat = datetime.now(UTC)
            time.sleep(0.5)
    finally:
        codes = [stop(process) for process, _ in portals]  # SIGTERM writes what each still holds
    assert codes == [0, 0], [(tmp_path / f"portal-{n}.log").read_text() for n in "ab"]
    with committed.connect() as conn:
        started, seconds, charged = conn.execute(
            text("SELECT started_at, seconds, charged FROM sessions WHERE auth_token = :t"), {"t": token}
        ).one()
        debited = conn.execute(text("SELECT -sum(amount) FROM ledger WHERE cause = 'time'")).scalar_one()
    assert abs(seconds - (last_beat - started).total_seconds()) <= 1.5, (seconds, last_beat - started)
    assert charged == seconds  # 60 minor units a minute, billed by the second
    assert debited == charged, "a heartbeat was billed by both portals"
    with Session(committed) as session:
        assert_ledger_balanced(session)
