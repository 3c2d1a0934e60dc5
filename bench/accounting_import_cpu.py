"""Benchmark: what the accounting importer (`hotspotctl radius import`) costs per packet, alone — without
radiusd and the load client on the same 2 cores (bench/accounting_billed.py measures the whole chain).

    .venv/bin/python bench/accounting_import_cpu.py --sessions 10000 [--history N] [--profile FILE] [--without-class]

`--sessions` logins wait for their Start (pending sessions, as a login leaves them); a detail file of their
mixed Start/Interim/Stop (as radiusd's `detail` module writes them, interleaved as in accounting_billed's
capacity round) is billed by one `AccountingImporter.run(once=True)` in this process. Printed: packets/s,
and the CPU per packet of the importer (this process) and of PostgreSQL (every backend), so that a change
is judged by what it costs, not by a rate that the machine's other load moves. `--profile` writes the
importer's cProfile for a look with pstats.
"""

from __future__ import annotations

import argparse
import cProfile
import sys
import time
from pathlib import Path

from churn import print_churn, row_churn
from cpu import postmaster_pid, tree_cpu_seconds
from radius_vs_rlm_sql import SESSION_S, load_history, prepare_databases

from devtools.cluster import temporary_cluster
from devtools.detail import detail_entry as entry
from rlm_hotspot.db.engine import make_engine, session_factory
from rlm_hotspot.radius.importer import AccountingImporter
from rlm_hotspot.settings import load_settings, with_overrides
from rlm_hotspot.spool_importer import IMPORT_STATEMENT_TIMEOUT_MS

STATUS = {"start": "Start", "interim": "Interim-Update", "stop": "Stop"}


def detail_entry(status: str, user: str, session_id: str, seconds: int, token: str | None, at: int) -> bytes:
    """One entry as radiusd's detail module writes a bench packet (bench/radius_vs_rlm_sql's session_packet);
    without a token, as from a NAS that does not echo our Class."""
    klass = [] if token is None else [("Class", f"0x{('hs:' + token).encode().hex()}")]
    return entry(at, [
        ("Acct-Status-Type", STATUS[status]), ("User-Name", f'"{user}"'), ("Acct-Session-Id", f'"{session_id}"'),
        ("NAS-IP-Address", "127.0.0.1"), ("Acct-Session-Time", seconds), ("Acct-Input-Octets", seconds * 1000),
        ("Acct-Output-Octets", seconds * 10_000), ("Acct-Delay-Time", SESSION_S - seconds), *klass,
        ("Packet-Src-IP-Address", "127.0.0.1"), ("Acct-Unique-Session-Id", f'"{session_id:0>32}"'),
    ])  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--history", type=int, default=0, help="closed sessions loaded first")
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--profile", type=Path, help="write the importer's cProfile here")
    parser.add_argument(
        "--without-class", action="store_true", help="packets without our Class: each found by NAS session id"
    )
    args = parser.parse_args()
    with temporary_cluster("bench-import-") as (cluster, root):
        settings_file, credentials = prepare_databases(cluster, root, args.sessions)
        if args.history:
            load_history(cluster, args.history)
        cluster.psql(
            "hotspot",
            "INSERT INTO sessions (status, account_id, card_id, hotspot_id, tariff_id, nas_id, source, auth_token, "
            "username, started_at, last_seen_at) "
            f"SELECT 'pending', NULL, c.id, 1, 1, 1, 'radius', 'tok-' || c.number, c.number, "
            f"now() - interval '{SESSION_S + 5} seconds', now() - interval '{SESSION_S + 5} seconds' FROM cards c; "
            "ANALYZE sessions;",
        )
        now = int(time.time())
        per_session = 3
        slots = []
        gap = max(1, len(credentials) // per_session)
        for i, (number, _) in enumerate(credentials):
            for j in range(per_session):
                seconds = SESSION_S * j // (per_session - 1)
                status = "start" if j == 0 else "stop" if j == per_session - 1 else "interim"
                token = None if args.without_class else f"tok-{number}"
                slots.append((i + j * gap, detail_entry(status, number, f"imp-{i}", seconds, token, now)))
        spool = root / "spool"
        spool.mkdir()
        (spool / "buffer.detail").write_bytes(b"".join(entry for _, entry in sorted(slots, key=lambda s: s[0])))
        packets = len(slots)
        settings = with_overrides(load_settings(Path(settings_file)), statement_timeout_ms=IMPORT_STATEMENT_TIMEOUT_MS)
        engine = make_engine(settings, pool_size=1)
        importer = AccountingImporter(spool, session_factory(engine), batch_size=args.batch_size)
        postmaster = postmaster_pid(cluster.datadir)
        profile = cProfile.Profile() if args.profile else None
        churn_before = row_churn(cluster)
        pg_before, own_before, started = tree_cpu_seconds(postmaster), time.process_time(), time.perf_counter()
        if profile:
            profile.enable()
        report = importer.run(once=True)
        if profile:
            profile.disable()
            profile.dump_stats(args.profile)
        elapsed = time.perf_counter() - started
        own, pg = time.process_time() - own_before, tree_cpu_seconds(postmaster) - pg_before
        engine.dispose()
        assert report.packets == packets and report.unbilled == 0, report
        opened = cluster.psql("hotspot", "SELECT count(*) FROM sessions WHERE status = 'closed' AND "
                              "auth_token LIKE 'tok-%'").strip()  # fmt: skip
        print(
            f"{packets:,} packets ({args.sessions:,} sessions, history {args.history:,}, batches <= "
            f"{args.batch_size}): {packets / elapsed:7.0f} packets/s; CPU µs a packet: importer "
            f"{own / packets * 1e6:4.0f}, postgres {pg / packets * 1e6:4.0f}; {opened} sessions closed; "
            f"{report.batches} batches"
        )
        print_churn("importer", churn_before, row_churn(cluster, settle=True), packets)
    return 0


if __name__ == "__main__":
    sys.exit(main())
