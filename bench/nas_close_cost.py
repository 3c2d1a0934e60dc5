"""Benchmark: what an Accounting-On costs inside the hook, closing a NAS's open sessions (issue 19).

In direct mode the Accounting-On is billed inside radiusd's python3 hook, which runs one call at a time: every
login of a reboot storm waits for it. This opens `--sessions` sessions of one NAS (a Start and an Interim
each, billed in-process), then closes them as an Accounting-On does, alternately one update per session (the
code before the fix, 03d671f) and in chunks (`record_accounting` now), each in a transaction rolled
back, on the same rows; it checks that both leave the same sessions and ledger rows, and prints the times.

    .venv/bin/python bench/nas_close_cost.py --sessions 5000 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from radius_vs_rlm_sql import prepare_databases
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from devtools.cluster import temporary_cluster
from rlm_hotspot.db import sessions as q
from rlm_hotspot.services.sessions import AccountingUpdate, record_accounting
from rlm_hotspot.services.tariff_cache import TariffCache

NAS_IP = "127.0.0.1"
INTERIM_S = 300
RESULT = (
    "SELECT s.id, s.status, s.stopped_at, s.terminate_cause, s.seconds, s.charged, "
    "(SELECT array_agg(l.idempotency_key || ' ' || l.amount || ' ' || coalesce(l.seconds, -1) || ' ' "
    "|| coalesce(l.bytes, -1) ORDER BY l.idempotency_key) FROM ledger l WHERE l.session_id = s.id) "
    "FROM sessions s ORDER BY s.id"
)


def open_sessions(db: Session, numbers: list[str], now: datetime) -> None:
    """A Start and an Interim for each card, billed as the hook bills them."""
    tariffs = TariffCache()
    for i, number in enumerate(numbers):
        base = AccountingUpdate(status="start", nas_ip=NAS_IP, username=number, acct_session_id=f"old-{i}",
                                session_time=0, input_octets=0, output_octets=0)  # fmt: skip
        record_accounting(db, tariffs, base, now - timedelta(seconds=2 * INTERIM_S))
        interim = AccountingUpdate(status="interim", nas_ip=NAS_IP, username=number, acct_session_id=f"old-{i}",
                                   session_time=INTERIM_S, input_octets=INTERIM_S * 1000,
                                   output_octets=INTERIM_S * 10_000)  # fmt: skip
        record_accounting(db, tariffs, interim, now - timedelta(seconds=INTERIM_S))


def close_one_by_one(db: Session, now: datetime) -> None:
    """The Accounting-On's close before the fix: the sessions locked, then one update each."""
    nas = q.nas_by_ip(db, NAS_IP)
    assert nas is not None
    q.nas_restarted(db, nas.id, now)
    ids = db.execute(
        text("SELECT id FROM sessions WHERE nas_id = :nas AND status <> 'closed' AND started_at < :at ORDER BY id "
             "FOR UPDATE"),
        {"nas": nas.id, "at": now},
    ).scalars()  # fmt: skip
    for session_id in list(ids):
        q.update_session(db, session_id, status="closed", stopped_at=now, terminate_cause="NAS-Reboot")


def close_in_one_statement(db: Session, now: datetime) -> None:
    record_accounting(db, TariffCache(), AccountingUpdate(status="on", nas_ip=NAS_IP), now)


def timed(db: Session, close: Callable[[Session, datetime], None], now: datetime) -> tuple[float, list[object]]:
    """Seconds the close took, and what it left (then rolled back)."""
    with db.begin():
        started = time.perf_counter()
        close(db, now)
        took = time.perf_counter() - started
        result = [tuple(row) for row in db.execute(text(RESULT))]
        db.rollback()
    return took, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with temporary_cluster("bench-nasclose-") as (cluster, root):
        _, credentials = prepare_databases(cluster, root, args.sessions)
        engine = create_engine(cluster.url("hotspot"))
        now = datetime.now(UTC)
        with Session(engine) as db, db.begin():
            open_sessions(db, [number for number, _ in credentials], now)
        with Session(engine) as db, db.begin():
            db.execute(text("ANALYZE"))
        print(f"== {args.sessions:,} open sessions of one NAS; load average {os.getloadavg()[0]:.2f} ==")
        with Session(engine) as db:
            for round_ in range(args.rounds):
                before, closed_before = timed(db, close_one_by_one, now)
                after, closed_after = timed(db, close_in_one_statement, now)
                assert closed_before == closed_after, "the two closes left different sessions or ledger rows"
                closed = sum(1 for row in closed_after if row[1:4] == ("closed", now, "NAS-Reboot"))
                print(f"round {round_ + 1}: one update per session {before * 1000:,.0f} ms, "
                      f"{q.NAS_CLOSE_CHUNK:,} per statement {after * 1000:,.0f} ms "
                      f"(both: {closed:,} sessions closed, the same ledger rows)")  # fmt: skip
        engine.dispose()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
