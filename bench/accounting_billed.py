"""Benchmark: accounting *billed* per second, and the billing lag, for buffered accounting — radiusd's detail
file billed by the importer process (`hotspotctl radius import`) — next to FreeRADIUS's rlm_sql in the same
run, on the same private PostgreSQL (bench/radius_vs_rlm_sql.py builds the servers and the data). (The
hotspot-buffer server that billed the file inside radiusd is retired: docs/radius.md keeps its figures.)

    .venv/bin/python bench/accounting_billed.py --sessions 10000 --window 32 --duration 60 [--history 2000000]

With `--history N` both databases first get N closed sessions (ours in `sessions`, rlm_sql's in `radacct`, as
bench/radius_vs_rlm_sql.py loads them). Per design, two rounds after 10,000 (`--sessions`) logins:
- **capacity**: mixed Start/Interim/Stop of every session (each session's packets in order, the sessions
  interleaved) sent as fast as the server answers them; *billed/s* = packets / (first packet sent → last
  ledger commit). rlm_sql writes radacct before it answers: its billed rate is its answer rate.
- **lag** (importer and rlm_sql): the same sessions again, paced at 50 % of the design's capacity for
  `--duration` seconds (sessions start staggered, each sends Start, Interims and Stop), and the lag of
  each packet from its Accounting-Response to the commit of the batch that billed it: p50 / p99. The
  k-th answer is matched to the batch that brings the committed packet count to k (the detail file keeps
  the order of the answers, up to the requests in flight at once).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import time

from churn import print_churn, row_churn
from cpu import postmaster_pid, tree_cpu_seconds
from radius_vs_rlm_sql import (
    SECRET,
    SESSION_S,
    Server,
    load_history,
    prepare_databases,
    session_packet,
    write_confdirs,
)
from radload import (
    ACCESS_REQUEST,
    ACCOUNTING_REQUEST,
    CLASS,
    Outcome,
    access_request,
    reply_attributes,
    run_load,
)

from devtools.cluster import PrivateCluster, temporary_cluster


def login_all(
    server: Server, credentials: list[tuple[str, str]], window: int, cluster: PrivateCluster
) -> list[list[bytes]]:
    """Every user logs in; their logins are moved SESSION_S into the past (the bench's sessions report that
    much online time, each packet's delay said, as in radius_vs_rlm_sql). The Class of each."""
    requests = []
    for user, pin in credentials:
        authenticator, attrs = access_request(user, pin, SECRET)
        requests.append((ACCESS_REQUEST, attrs, authenticator))
    outcome = asyncio.run(run_load("127.0.0.1", server.auth_port, SECRET, requests, window))
    assert outcome.codes.get(2) == len(credentials), f"{server.name}: not every login accepted: {outcome.summary()}"
    if server.name.startswith("rlm_hotspot"):
        cluster.psql(
            "hotspot",
            f"UPDATE sessions SET started_at = started_at - interval '{SESSION_S} seconds', "
            f"last_seen_at = last_seen_at - interval '{SESSION_S} seconds' WHERE status = 'pending'",
        )
    return [reply_attributes(r, CLASS) if r else [] for r in outcome.replies]


def session_packets(
    credentials: list[tuple[str, str]], classes: list[list[bytes]], tag: str, per_session: int
) -> list[list[bytes]]:
    """Each session's packets in order: Start, `per_session` - 2 Interims, Stop, spread over SESSION_S seconds
    of online time reported late (Acct-Delay-Time) so that they stay within the wall clock."""
    packets = []
    for i, (user, _) in enumerate(credentials):
        own = []
        for j in range(per_session):
            seconds = SESSION_S * j // (per_session - 1)
            status = "start" if j == 0 else "stop" if j == per_session - 1 else "interim"
            own.append(session_packet(status, user, f"{tag}-{i}", seconds, classes[i]))
        packets.append(own)
    return packets


def interleaved(packets: list[list[bytes]]) -> list[bytes]:
    """Capacity round: a stream where a third of the sessions start while others are mid-way or stopping."""
    count, per = len(packets), len(packets[0])
    gap = max(1, count // per)
    slots: list[tuple[int, bytes]] = []
    for i, own in enumerate(packets):
        slots.extend((i + j * gap, packet) for j, packet in enumerate(own))
    return [packet for _, packet in sorted(slots, key=lambda slot: slot[0])]


def paced(packets: list[list[bytes]], duration: float) -> tuple[list[bytes], list[float]]:
    """Lag round: sessions start staggered over the first half of `duration`, each spread over half of it."""
    count, per = len(packets), len(packets[0])
    span = duration / 2
    timed = [
        (i * span / count + j * span / (per - 1), packet)
        for i, own in enumerate(packets)
        for j, packet in enumerate(own)
    ]
    timed.sort(key=lambda slot: slot[0])
    return [packet for _, packet in timed], [at for at, _ in timed]


def send(server: Server, packets: list[bytes], window: int, send_at: list[float] | None = None) -> Outcome:
    requests = [(ACCOUNTING_REQUEST, packet, None) for packet in packets]
    outcome = asyncio.run(run_load("127.0.0.1", server.acct_port, SECRET, requests, window, send_at=send_at))
    assert outcome.codes.get(5) == len(packets), f"{server.name}: not every packet answered: {outcome.summary()}"
    return outcome


def committed_batches(cluster: PrivateCluster, after_id: int) -> list[tuple[int, float]]:
    out = cluster.psql(
        "hotspot",
        f"SELECT packets, extract(epoch FROM committed_at) FROM radius_batches WHERE id > {after_id} ORDER BY id",
    )
    return [(int(p), float(t)) for p, t in (line.split("|") for line in out.split() if "|" in line)]


def last_batch(cluster: PrivateCluster) -> int:
    return int(cluster.psql("hotspot", "SELECT coalesce(max(id), 0) FROM radius_batches").strip())


def wait_committed(
    cluster: PrivateCluster, after_id: int, packets: int, timeout: float = 900
) -> list[tuple[int, float]]:
    deadline = time.monotonic() + timeout
    while True:
        batches = committed_batches(cluster, after_id)
        if sum(p for p, _ in batches) >= packets:
            return batches
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {sum(p for p, _ in batches)} of {packets} packets billed")
        time.sleep(0.2)


def lags(answered_at: list[float], batches: list[tuple[int, float]]) -> list[float]:
    """Each answer's lag to the commit of the batch that took the committed count past its rank."""
    out, cumulative, index = [], 0, 0
    for rank, answered in enumerate(sorted(answered_at), 1):
        while cumulative < rank:
            cumulative += batches[index][0]
            index += 1
        out.append(batches[index - 1][1] - answered)
    return out


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of the paced (lag) round")
    parser.add_argument("--batch-size", type=int, default=2000, help="the importer's --batch-size")
    parser.add_argument("--history", type=int, default=0, help="closed sessions loaded into both databases first")
    args = parser.parse_args()
    keep = bool(os.environ.get("BENCH_KEEP"))
    servers: list[Server] = []
    with temporary_cluster("bench-acct-", keep=keep) as (cluster, root):
        try:
            settings_file, credentials = prepare_databases(cluster, root, args.sessions)
            ours, theirs = write_confdirs(root / "importer", cluster, settings_file, True, batch_size=args.batch_size)
            ours.name = "rlm_hotspot/importer"
            servers = [ours, theirs]
            if args.history:
                load_history(cluster, args.history)
            for server in servers:
                server.start()
            print(
                f"== {args.sessions:,} sessions, window {args.window}, importer batches <= {args.batch_size}, "
                f"history {args.history:,} closed sessions =="
            )
            capacity: dict[str, float] = {}
            for server in servers:
                tag = f"cap-{server.name}"
                classes = login_all(server, credentials, args.window, cluster)
                stream = interleaved(session_packets(credentials, classes, tag, 3))
                before = last_batch(cluster)
                cpu_before = cpu_times(server, cluster)
                churn_before = row_churn(cluster, settle=True) if server is ours else {}
                started = time.perf_counter()
                outcome = send(server, stream, args.window)
                if server is ours:
                    wait_committed(cluster, before, len(stream))
                    billed = len(stream) / (time.perf_counter() - started)
                else:
                    billed = outcome.rate
                spent = {name: cpu - cpu_before[name] for name, cpu in cpu_times(server, cluster).items()}
                capacity[server.name] = billed
                print(f"{server.name:20} capacity  answered {outcome.summary()}")
                print(f"{server.name:20} capacity  billed   {billed:8.0f} packets/s ({len(stream):,} packets, mixed)")
                per_packet = ", ".join(f"{name} {cpu / len(stream) * 1e6:5.0f}" for name, cpu in spent.items())
                print(f"{server.name:20} capacity  CPU µs a packet: {per_packet}")
                if server is ours:
                    print_churn(server.name, churn_before, row_churn(cluster, settle=True), len(stream))
                close_all(cluster)
            for server in (ours, theirs):
                rate = capacity[server.name] / 2
                per_session = max(3, math.ceil(rate * args.duration / args.sessions))
                classes = login_all(server, credentials, args.window, cluster)
                stream, send_at = paced(
                    session_packets(credentials, classes, f"lag-{server.name}", per_session), args.duration
                )
                send_at = [at * len(stream) / (rate * args.duration) for at in send_at]  # exactly `rate` on average
                before = last_batch(cluster)
                outcome = send(server, stream, args.window, send_at)
                offered = len(stream) / outcome.elapsed
                if server is ours:
                    waits = lags(outcome.answered_at, wait_committed(cluster, before, len(stream)))
                    lag = (
                        f"lag p50 {percentile(waits, 0.5) * 1000:7.0f} ms  p99 {percentile(waits, 0.99) * 1000:7.0f} ms"
                    )
                else:
                    lag = "lag 0 (committed before the answer)"
                print(
                    f"{server.name:20} 50% load  {offered:8.0f} packets/s for {outcome.elapsed:.0f} s "
                    f"({len(stream):,} packets, {per_session} per session); answered {outcome.summary()}"
                )
                print(f"{server.name:20} 50% load  {lag}")
                close_all(cluster)
            print(
                f"ratio billed/s  rlm_hotspot/importer / rlm_sql = {capacity[ours.name] / capacity[theirs.name]:5.2f}"
            )
            held = cluster.psql("hotspot", "SELECT count(*) FROM quarantine").strip()
            balanced = cluster.psql(
                "hotspot",
                "SELECT count(*) FROM accounts a WHERE balance <> (SELECT coalesce(sum(amount), 0) FROM ledger l "
                "WHERE l.account_id = a.id)",
            ).strip()
            print(f"rlm_hotspot  {held} quarantine rows, {balanced} accounts whose ledger does not add up (both 0)")
        finally:
            for server in servers:
                server.stop()
    return 0


def cpu_times(server: Server, cluster: PrivateCluster) -> dict[str, float]:
    """CPU seconds so far of what bills a design's packets: the importer (ours), PostgreSQL, radiusd, the client."""
    times = {}
    if server.importer is not None:
        times["importer"] = tree_cpu_seconds(server.importer.pid)
    times["postgres"] = tree_cpu_seconds(postmaster_pid(cluster.datadir))
    assert server.process is not None
    times["radiusd"] = tree_cpu_seconds(server.process.pid)
    times["client"] = time.process_time()
    return times


def close_all(cluster: PrivateCluster) -> None:
    """The next round starts from a clean slate of live sessions."""
    cluster.psql("hotspot", "UPDATE sessions SET status = 'closed', stopped_at = now() WHERE status <> 'closed'")


if __name__ == "__main__":
    sys.exit(main())
