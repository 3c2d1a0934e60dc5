"""Two `hotspotctl worker` processes on one database: each session is acted on by one of them, once."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from devtools.processes import Processes
from rlm_hotspot.db.ledger import post_entry
from rlm_hotspot.pins import PinVault
from rlm_hotspot.services import cards, catalog
from rlm_hotspot.services.sessions import AccountingUpdate, record_accounting
from rlm_hotspot.services.tariff_cache import TariffCache
from tests.db import factories
from tests.db.helpers import assert_ledger_balanced
from tests.e2e.standin_nas import StandInNas
from tests.multinode.conftest import HOTSPOTCTL, Route, node_environment

SECRET = "coa-secret"
TO_CUT = 20
STALE = 5


@pytest.fixture
def nas() -> Iterator[StandInNas]:
    stand_in = StandInNas(SECRET, {f"CUT{i}": ("ack", None) for i in range(TO_CUT)})
    yield stand_in
    stand_in.close()


WAVES = 4


def world(engine: Engine, nas_port: int) -> None:
    with Session(engine) as db, db.begin():
        factories.tariff(db, time_increment_seconds=60, simultaneous_use=1)
        factories.hotspot(db, heartbeat="off")
        catalog.add_nas(db, name="standin", hotspot="cafe", ip_address="127.0.0.1", secret=SECRET,
                        coa_port=nas_port, vendor="chilli")  # fmt: skip


def sessions_to_end(engine: Engine, vault: PinVault, wave: int) -> None:
    """A wave of open RADIUS sessions whose accounts are drained, and of ones nobody heard of for 2 hours."""
    now = datetime.now(UTC)
    cut, stale = TO_CUT // WAVES, STALE // WAVES + (wave < STALE % WAVES)
    with Session(engine, expire_on_commit=False) as db, db.begin():
        batch = factories.batch(db, vault, count=cut + stale, hotspot="cafe", now=now)
        for index, number in enumerate(batch.numbers):
            is_stale = index >= cut
            acct_session_id = f"STALE{wave}.{index}" if is_stale else f"CUT{wave * cut + index}"
            update = AccountingUpdate(status="start", nas_ip="127.0.0.1", username=number,
                                      acct_session_id=acct_session_id, session_time=0,
                                      framed_ip=f"10.1.{wave}.{index + 1}")  # fmt: skip
            record_accounting(db, TariffCache(), update, now - timedelta(hours=2) if is_stale else now)
            if not is_stale:
                card = cards.find_card(db, number)
                post_entry(db, account_id=card.account_id, amount=-500, cause="adjustment", key=f"d:{number}", now=now)  # type: ignore[arg-type]


def finished(engine: Engine) -> bool:
    with engine.connect() as conn:
        done = conn.execute(text("SELECT count(*) FROM disconnects WHERE done_at IS NOT NULL")).scalar_one()
        stale = conn.execute(text("SELECT count(*) FROM sessions WHERE terminate_cause = 'Stale'")).scalar_one()
    return done == TO_CUT and stale == STALE


def test_two_workers_send_each_disconnect_once_and_close_each_stale_session_once(
    route: Route,
    radius_database: str,
    radius_db: Engine,
    vault: PinVault,
    key_file: Path,
    nas: StandInNas,
    tmp_path: Path,
) -> None:
    world(radius_db, nas.port)
    processes = Processes()
    logs = [tmp_path / f"worker-{name}.log" for name in ("a", "b")]
    try:
        for log in logs:
            processes.start(
                [HOTSPOTCTL, "worker", "--interval", "0.5"],
                log,
                env=node_environment(route, radius_database, key_file),
            )
        for wave in range(WAVES):  # while both run: each wave is for whichever cycles first, or both at once
            sessions_to_end(radius_db, vault, wave)
            time.sleep(0.35)
        deadline = time.monotonic() + 30
        while not finished(radius_db):
            assert time.monotonic() < deadline, "\n".join(log.read_text() for log in logs)
            time.sleep(0.2)
        time.sleep(2)  # a few more cycles of each: nothing more may be sent
    finally:
        processes.stop_all()
    texts = [log.read_text() for log in logs]
    assert all("worker started" in t for t in texts), texts
    print("Disconnect-ACKs recorded by each worker:", [t.count("Disconnect-ACK") for t in texts])
    sent = Counter(str(request["Acct-Session-Id"]) for request in nas.received)
    assert sent == {f"CUT{i}": 1 for i in range(TO_CUT)}
    with radius_db.connect() as conn:
        assert conn.execute(text("SELECT count(*), max(attempts) FROM disconnects")).one() == (TO_CUT, 1)
    stale_closed = sum(int(n) for t in texts for n in re.findall(r"closed (\d+) stale session", t))
    assert stale_closed == STALE, texts
    with Session(radius_db) as session:
        assert_ledger_balanced(session)
