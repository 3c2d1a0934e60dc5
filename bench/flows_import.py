"""Benchmark: NetFlow spool files → traffic debits, with N active sessions, on a private PostgreSQL.

Generates nfacctd-style spool files (one per bin and direction; every active IP has a billable and a
free record in each), then times the importer over them: parse, COPY, set-based attribution, rating
with the core, one statement applying every debit per batch. Prints records/s and per-batch latency.

Usage: .venv/bin/python bench/flows_import.py [--sessions 20000] [--bins 5] [--history 0]

--history N adds N closed sessions of the past month on the same address pool (DHCP reuses addresses),
so the attribution's lookup of the sessions that may hold an IP is measured against a long history.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from devtools.cluster import PrivateCluster, temporary_cluster
from flowimport.importer import Importer, ImporterSettings
from rlm_hotspot.db import migrate
from rlm_hotspot.db.ledger import accounts_out_of_balance
from rlm_hotspot.pins import PinVault, create_key_file
from rlm_hotspot.services import cards, catalog
from rlm_hotspot.services.flows import ImportPolicy

BIN0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)


def client_ip(index: int) -> str:
    return f"10.{1 + index // 65536}.{index // 256 % 256}.{index % 256}"


def populate(session: Session, vault: PinVault, count: int) -> None:
    """A netflow hotspot, COUNT activated cards (value loaded through the ledger) and an open session each."""
    catalog.add_tariff(session, catalog.TariffSpec(name="bench", traffic_price=7, free_networks=("10.99.0.0/24",)))
    catalog.add_hotspot(
        session,
        catalog.HotspotSpec(
            name="bench", timezone="Europe/Moscow", tariff="bench", mode="standalone", traffic_meter="netflow"
        ),
    )
    cards.generate_batch(
        session, vault, cards.BatchSpec(count=count, face_value=100_000, hotspot="bench"), BIN0, "encrypted"
    )
    # Set-based activation (what cards.activate does, for COUNT cards at once): account, card_load, card.
    session.execute(
        text(
            """
        WITH numbered AS (SELECT id, number, row_number() OVER (ORDER BY id) AS n FROM cards),
        opened AS (INSERT INTO accounts (balance, created_at, updated_at)
                   SELECT 0, :t, :t FROM numbered RETURNING id),
        paired AS (SELECT o.id AS account_id, n.id AS card_id
                   FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM opened) o JOIN numbered n USING (n))
        UPDATE cards c SET status = 'active', account_id = p.account_id, activated_at = :t
        FROM paired p WHERE c.id = p.card_id
        """
        ),
        {"t": BIN0 - timedelta(hours=1)},
    )
    session.execute(
        text(
            """
        WITH loaded AS (
            INSERT INTO ledger (account_id, amount, cause, idempotency_key, card_id, created_at)
            SELECT c.account_id, b.face_value, 'card_load', 'card_load:' || c.id, c.id, :t
            FROM cards c JOIN card_batches b ON b.id = c.batch_id RETURNING account_id, amount)
        UPDATE accounts a SET balance = loaded.amount FROM loaded WHERE a.id = loaded.account_id
        """
        ),
        {"t": BIN0 - timedelta(hours=1)},
    )
    session.execute(
        text(
            """
        INSERT INTO sessions (status, account_id, card_id, hotspot_id, tariff_id, source, auth_token, framed_ip,
                              started_at, last_seen_at)
        SELECT 'open', c.account_id, c.id, h.id, h.tariff_id, 'portal', 'bench-' || c.id,
               CAST(('10.' || (1 + (n - 1) / 65536) || '.' || ((n - 1) / 256 % 256) || '.' || ((n - 1) % 256))
                    AS inet),
               :t, :t
        FROM (SELECT *, row_number() OVER (ORDER BY id) AS n FROM cards) c, hotspots h
        """
        ),
        {"t": BIN0 - timedelta(hours=1)},
    )
    session.execute(text("ANALYZE"))


def add_history(session: Session, closed: int, sessions: int) -> None:
    """CLOSED sessions that ended weeks before the imported bins, spread over the active address pool."""
    session.execute(
        text(
            """
        INSERT INTO sessions (status, account_id, card_id, hotspot_id, tariff_id, source, auth_token, framed_ip,
                              started_at, last_seen_at, stopped_at)
        SELECT 'closed', c.account_id, c.id, c.hotspot_id, c.tariff_id, 'portal', 'history-' || g,
               CAST(('10.' || (1 + i / 65536) || '.' || (i / 256 % 256) || '.' || (i % 256)) AS inet),
               :t - make_interval(secs => g % 2000000), :t - make_interval(secs => g % 2000000) + interval '1 hour',
               :t - make_interval(secs => g % 2000000) + interval '1 hour'
        FROM generate_series(0, :closed - 1) g
        CROSS JOIN LATERAL (SELECT g % :sessions AS i) pool
        JOIN (SELECT s.card_id AS id, s.account_id, s.hotspot_id, s.tariff_id,
                     row_number() OVER (ORDER BY s.id) - 1 AS n FROM sessions s) c ON c.n = pool.i
        """
        ),
        {"t": BIN0 - timedelta(days=7), "closed": closed, "sessions": sessions},
    )
    session.execute(text("ANALYZE sessions"))


def write_spool(spool: Path, sessions: int, bins: int, rng: random.Random) -> int:
    """One file per bin and direction, a billable and a free record per IP; returns the record count."""
    records = 0
    for minute in range(bins):
        start = BIN0 + timedelta(minutes=minute)
        stamp = str(int(start.timestamp()))
        for direction, field in (("down", "ip_dst"), ("up", "ip_src")):
            writer = f"{direction}/{1000 + minute}"
            lines = [json.dumps({"event_type": "purge_init", "writer_id": writer})]
            for index in range(sessions):
                for tag in (2, 1):
                    lines.append(
                        json.dumps(
                            {
                                "event_type": "purge",
                                "tag": tag,
                                field: client_ip(index),
                                "stamp_inserted": stamp,
                                "stamp_updated": stamp,
                                "packets": 10,
                                "bytes": rng.randrange(40, 5_000_000),
                            }
                        )
                    )
            lines.append(json.dumps({"event_type": "purge_close", "writer_id": writer, "purged_entries": 2 * sessions}))
            (spool / f"{direction}-{start:%Y%m%d-%H%M%S}.json").write_text("\n".join(lines) + "\n")
            records += 2 * sessions
    return records


def prepared_import(
    cluster: PrivateCluster, root: Path, sessions: int, bins: int, history: int
) -> tuple[Importer, Engine, Path, int]:
    """The bench's database (`sessions` active sessions, `history` closed ones) and spool (`bins` minutes),
    and an importer for them: (importer, engine, spool, records written)."""
    engine = create_engine(cluster.url("bench"), connect_args={"options": "-c timezone=UTC"})
    migrate.upgrade(engine)
    create_key_file(root / "pin.keys")
    with Session(engine) as session, session.begin():
        session.execute(text("INSERT INTO installation (currency_code, currency_exponent) VALUES ('EUR', 2)"))
        started = time.perf_counter()
        populate(session, PinVault.from_file(root / "pin.keys"), sessions)
        if history:
            add_history(session, history, sessions)
    print(f"setup: {sessions:,} active sessions, {history:,} closed ones, in {time.perf_counter() - started:.1f} s")
    spool = root / "spool"
    spool.mkdir()
    records = write_spool(spool, sessions, bins, random.Random(7))
    settings = ImporterSettings(hotspot="bench", spool=spool, policy=ImportPolicy(60, 180), settle=timedelta(0))
    return Importer(settings, sessionmaker(engine)), engine, spool, records


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=20_000)
    parser.add_argument("--bins", type=int, default=5)
    parser.add_argument("--history", type=int, default=0, help="closed sessions on the same addresses")
    args = parser.parse_args()
    with temporary_cluster("bench-flows-", "bench") as (cluster, root):
        importer, engine, spool, records = prepared_import(cluster, root, args.sessions, args.bins, args.history)
        started = time.perf_counter()
        if os.environ.get("BENCH_PROFILE"):  # BENCH_PROFILE=1: where the time goes
            profile = cProfile.Profile()
            report = profile.runcall(importer.run_cycle)
            pstats.Stats(profile).sort_stats("cumulative").print_stats(30)
        else:
            report = importer.run_cycle()
        elapsed = time.perf_counter() - started
        assert report.errors == 0 and len(report.imported) == 2 * args.bins, report
        with Session(engine) as session:
            assert accounts_out_of_balance(session) == []
            debits = session.execute(text("SELECT count(*) FROM ledger WHERE cause = 'traffic'")).scalar_one()
        replay_started = time.perf_counter()
        for path in (spool / "done").iterdir():
            path.rename(spool / path.name)
        replay = importer.run_cycle()
        replay_elapsed = time.perf_counter() - replay_started
        assert replay.replayed == 2 * args.bins and not replay.imported
        print(
            f"imported {records:,} records in {2 * args.bins} batches ({args.sessions:,} sessions each) "
            f"into {debits:,} ledger rows: {elapsed:.2f} s = {records / elapsed:,.0f} records/s, "
            f"{elapsed / (2 * args.bins) * 1000:.0f} ms per batch"
        )
        print(f"replay of the same files (skipped): {replay_elapsed:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
