"""Benchmark: PostgreSQL's CPU per unit of work, through the real components (docs/scaling.md's table).

Each unit on a private PostgreSQL of its own, driven as its own benchmark drives it:

- a RADIUS login, and accounting billed (Start, Interim-Update, Stop): radiusd + rlm_hotspot, as
  bench/radius_vs_rlm_sql.py drives it, first billing before the answer (direct), then with buffered
  accounting (answered at once, billed by `hotspotctl radius import`: measured until the last Stop is billed);
- a portal heartbeat: `hotspotctl portal run` (gunicorn), guests beating at a fixed rate, as
  bench/portal_heartbeats.py (`--rate`) drives it;
- a NetFlow record imported: the importer over spool files, as bench/flows_import.py runs it.

For each: the CPU the cluster's processes spent (utime + stime from /proc: the postmaster, every backend,
those that exited during the measurement too, and the background writers) divided by the units done;
the same for the front process (radiusd; gunicorn's master and workers; the importer, which runs in this
process). The load generators run in this process and are not counted. CPU is what other processes on
the machine do not change much; the rates (units/s) are printed for context and do depend on them, so
the load average is printed too. Run it alone:

    flock /tmp/bench.lock .venv/bin/python bench/db_cost.py [--users 3000] [--window 64] [--guests 5000]
        [--heartbeat-rate 1000] [--seconds 20] [--flow-sessions 20000] [--bins 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from cpu import postmaster_pid, tree_cpu_seconds
from flows_import import prepared_import
from portal_heartbeats import Phase, load, serving_portal, warm_up
from radius_vs_rlm_sql import Server, drive, prepare_databases, write_confdirs
from sqlalchemy import create_engine, text

from devtools.cluster import PrivateCluster, temporary_cluster

BILLED_POLL_S = 1.0  # how often the buffered round asks whether the last Stop is billed (one held connection)


@dataclass(frozen=True)
class Snapshot:
    wall: float  # time.perf_counter()
    database: float  # CPU seconds the cluster has spent
    front: float  # CPU seconds the front process has spent


@dataclass(frozen=True)
class Cost:
    unit: str
    count: int
    front_name: str
    before: Snapshot
    after: Snapshot

    def row(self) -> str:
        wall = self.after.wall - self.before.wall
        database = (self.after.database - self.before.database) / self.count * 1000
        front = (self.after.front - self.before.front) / self.count * 1000
        return (
            f"| {self.unit} | {self.count:,} | {self.count / wall:,.0f} | {database:.4f} | {front:.4f} "
            f"({self.front_name}) |"
        )


class Meter:
    """CPU of one cluster and of one front process (tree, or this process), read at will."""

    def __init__(self, cluster: PrivateCluster, front: Callable[[], float]) -> None:
        self.postmaster = postmaster_pid(cluster.datadir)
        self.front = front
        self.phases: dict[str, tuple[Snapshot, Snapshot]] = {}  # what `around` measured

    def read(self) -> Snapshot:
        return Snapshot(time.perf_counter(), tree_cpu_seconds(self.postmaster), self.front())

    @contextmanager
    def around(self, phase: str) -> Iterator[None]:
        """For `drive(around=...)`: the snapshots before and after a phase, kept in `phases`."""
        before = self.read()
        yield
        self.phases[phase] = (before, self.read())


def wait_until_closed(url: str, tag: str, count: int) -> None:
    """Until the buffer has billed the round's every Stop; one connection, asked once a second (a psql per
    poll would cost the cluster a backend start each time, counted against the packets)."""
    engine = create_engine(url)
    query = text("SELECT count(*) FROM sessions WHERE status = 'closed' AND acct_session_id LIKE :tag")
    try:
        with engine.connect() as conn:
            while conn.execute(query, {"tag": f"{tag}-%"}).scalar_one() < count:
                conn.rollback()
                time.sleep(BILLED_POLL_S)
    finally:
        engine.dispose()


def radius_costs(args: argparse.Namespace) -> list[Cost]:
    """Logins and accounting through radiusd + rlm_hotspot: billed before the answer, then buffered."""
    costs = []
    with temporary_cluster("bench-dbcost-radius-") as (cluster, root):
        settings_file, credentials = prepare_databases(cluster, root, 2 * args.users)
        for round_number, mode in enumerate(("direct", "buffered")):
            users = credentials[round_number * args.users : (round_number + 1) * args.users]
            server, _ = write_confdirs(root / mode, cluster, settings_file, buffered=mode == "buffered")
            server.start()
            try:
                costs += radius_round(cluster, server, users, args.window, mode)
            finally:
                server.stop()
    return costs


def radius_round(
    cluster: PrivateCluster, server: Server, users: list[tuple[str, str]], window: int, mode: str
) -> list[Cost]:
    assert server.process is not None
    pids = server.pids()  # radiusd, and (buffered) the importer that bills its detail file
    meter = Meter(cluster, lambda: sum(tree_cpu_seconds(pid) for pid in pids))
    outcomes = drive(server, users, window, mode, cluster, meter.around)
    if mode == "buffered":
        wait_until_closed(cluster.url("hotspot"), mode, len(users))
    billed = meter.read()
    for phase, outcome in outcomes.items():
        assert outcome.timeouts == 0 and sum(outcome.codes.values()) == len(users), (mode, phase, outcome.summary())
    assert outcomes["access"].codes == {2: len(users)}, outcomes["access"].summary()  # every login accepted
    login = Cost(f"RADIUS login ({mode} round, window {window})", len(users), "radiusd", *meter.phases["access"])
    # buffered: from the first Start sent until the importer billed the last Stop
    mixed = Cost(f"accounting billed, {mode} (Start + Interim + Stop)", 3 * len(users), "radiusd",
                 meter.phases["start"][0], billed)  # fmt: skip
    if mode == "buffered":
        return [login, mixed]
    names = {"start": "Accounting-Start", "interim": "Interim-Update", "stop": "Accounting-Stop"}
    alone = [Cost(f"{label} billed, direct", len(users), "radiusd", *meter.phases[key]) for key, label in names.items()]
    return [login, *alone, mixed]


def heartbeat_costs(args: argparse.Namespace) -> list[Cost]:
    """Portal heartbeats at a fixed rate, every guest online beating in turn."""
    with temporary_cluster("bench-dbcost-portal-", "bench") as (cluster, root):
        workers = os.cpu_count() or 1
        with serving_portal(cluster, root, args.guests, workers, 2) as (portal, port, cookies):
            meter = Meter(cluster, lambda: tree_cpu_seconds(portal.pid))
            connections = min(1024, len(cookies))
            run = Phase(status_every=0, seconds=args.seconds, rate=args.heartbeat_rate, pause_after=1.0)
            marks = []
            asyncio.run(load(port, cookies, connections, [warm_up(cookies, connections), run],
                             between=lambda: marks.append(meter.read())))  # fmt: skip
            marks.append(meter.read())  # after the pause: the writers have posted what they held
    beats = len(run.latencies["heartbeat"])
    assert run.errors == 0, f"{run.errors} heartbeats not answered 200"
    unit = f"portal heartbeat ({args.guests:,} guests online, offered {args.heartbeat_rate:,.0f}/s)"
    return [Cost(unit, beats, f"gunicorn, {workers} workers", marks[0], marks[1])]


def flow_costs(args: argparse.Namespace) -> list[Cost]:
    """One import cycle over the spool: every record parsed, attributed, rated and debited."""
    with temporary_cluster("bench-dbcost-flows-", "bench") as (cluster, root):
        importer, engine, _spool, records = prepared_import(cluster, root, args.flow_sessions, args.bins, 0)
        meter = Meter(cluster, time.process_time)
        before = meter.read()
        report = importer.run_cycle()
        after = meter.read()
        engine.dispose()
    assert report.errors == 0 and len(report.imported) == 2 * args.bins, report
    unit = f"NetFlow record imported ({args.flow_sessions:,} sessions)"
    return [Cost(unit, records, "importer", before, after)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=3000, help="logins per round (and Start/Interim/Stop each)")
    parser.add_argument("--window", type=int, default=64, help="RADIUS requests outstanding")
    parser.add_argument("--guests", type=int, default=5000, help="portal guests online")
    parser.add_argument("--heartbeat-rate", type=float, default=1000, help="heartbeats a second, on schedule")
    parser.add_argument("--seconds", type=float, default=20, help="how long the heartbeats are measured")
    parser.add_argument("--flow-sessions", type=int, default=20_000)
    parser.add_argument("--bins", type=int, default=5, help="minutes of spool (2 files, 4 records a session each)")
    parser.add_argument("--only", choices=("radius", "portal", "flows"), action="append", help="only these units")
    args = parser.parse_args()
    parts = {"radius": radius_costs, "portal": heartbeat_costs, "flows": flow_costs}
    load_before = os.getloadavg()
    costs = [cost for name, part in parts.items() if not args.only or name in args.only for cost in part(args)]
    load_after = os.getloadavg()
    print(f"\n{os.cpu_count()} cores; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after "
          f"(1 min; 5 min {load_after[1]:.2f})")  # fmt: skip
    print("| unit of work | units | units/s | PostgreSQL CPU ms/unit | front process CPU ms/unit |")
    print("|---|---|---|---|---|")
    for cost in costs:
        print(cost.row())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
