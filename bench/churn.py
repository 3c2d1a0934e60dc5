"""How many rows each billing table gained and rewrote during a benchmark round, and how many of the rewrites
PostgreSQL made in place (HOT: no new index entries), from pg_stat_user_tables; WAL bytes from the LSN."""

from __future__ import annotations

import time

from devtools.cluster import PrivateCluster

CHURN_TABLES = ("sessions", "accounts", "cards", "ledger")


def row_churn(cluster: PrivateCluster, settle: bool = False) -> dict[str, tuple[int, ...]]:
    """Rows inserted, updated and updated in place (HOT) so far per billing table, and the WAL position in
    bytes. With `settle`, first waits out PostgreSQL 15's statistics delay: a backend that has gone idle
    reports its pending table counters at most 10 s later (PGSTAT_IDLE_INTERVAL)."""
    if settle:
        time.sleep(11)
    rows = cluster.psql(
        "hotspot",
        "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname IN "
        f"({', '.join(repr(t) for t in CHURN_TABLES)}) UNION ALL "
        "SELECT 'wal', pg_current_wal_lsn() - '0/0', 0, 0",
    )
    return {name: tuple(int(v) for v in values) for name, *values in (r.split("|") for r in rows.split())}


def print_churn(name: str, before: dict[str, tuple[int, ...]], after: dict[str, tuple[int, ...]], packets: int) -> None:
    """Per table: inserts and updates per packet, the share of updates that were HOT; WAL bytes per packet."""
    parts = []
    for table in CHURN_TABLES:
        ins, upd, hot = (a - b for a, b in zip(after[table], before[table], strict=True))
        parts.append(f"{table} ins {ins / packets:.2f} upd {upd / packets:.2f} HOT {hot / upd if upd else 0:4.0%}")
    wal = (after["wal"][0] - before["wal"][0]) / packets
    print(f"{name:20} capacity  rows a packet: {'; '.join(parts)}; WAL {wal:.0f} B a packet")
