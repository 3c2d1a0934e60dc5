"""Benchmark: what one Accounting-Start costs in the direct hook, with and without a mass close before it.

The reboot storm's direct Starts ran at half the accounting bench's rate (bench/reboot_storm.py): was it the
Accounting-On's close of thousands of sessions just before them (a plan, dead index entries, statistics)?
Both kinds are measured in one run, on one radiusd and one PostgreSQL, so that the machine's load weighs on
both alike. `--sessions` cards are used once (a login, its Start and Stop) and `--sessions` others have a
session open. Then, with nothing closed before them, the first cards log in again and start (paced over
5 s each, 512 in flight, as the storm sends them); then the NAS sends Accounting-On (closing the open
sessions) and the others do the same. For each phase: the Starts a second, the hook's own time per Start
(the module's histogram), CPU per Start of radiusd and of PostgreSQL, and statements per Start
(pg_stat_statements).

    .venv/bin/python bench/start_cost.py --sessions 5000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import time
import urllib.request

from accounting_billed import login_all, send
from cpu import postmaster_pid, tree_cpu_seconds
from radius_vs_rlm_sql import SECRET, Server, prepare_databases, session_packet, write_confdirs
from radload import (
    ACCESS_ACCEPT,
    ACCESS_REQUEST,
    ACCOUNTING_REQUEST,
    CLASS,
    access_request,
    accounting_on,
    accounting_request,
    reply_attributes,
    run_load,
)
from reboot_storm import old_sessions_before_reboot

from devtools.cluster import PrivateCluster, temporary_cluster
from devtools.ha import free_tcp_ports
from devtools.processes import exit_on_signals

PHASE_S = 5.0  # the logins over this long, then their Starts over as long


def hook_seconds(port: int) -> tuple[float, float]:
    """(seconds, calls) of the accounting hook so far, from the module's Prometheus metrics."""
    page = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()

    def value(name: str) -> float:
        found = re.search(name + r'\{hook="accounting"\} (\S+)', page)
        assert found is not None, f"{name} not in the module's metrics"
        return float(found.group(1))

    return value("hotspot_radius_hook_seconds_sum"), value("hotspot_radius_hook_seconds_count")


def statements(cluster: PrivateCluster) -> tuple[int, int]:
    """Statements PostgreSQL ran so far: those sent (each a round trip, BEGIN and COMMIT too), and all of them
    (with those of functions, triggers and foreign key checks)."""
    sent, every = (
        cluster.psql("hotspot", "SELECT sum(calls) FILTER (WHERE toplevel), sum(calls) FROM pg_stat_statements")
        .strip()
        .split("|")
    )
    return int(sent), int(every)


async def logins(
    server: Server, credentials: list[tuple[str, str]], tag: str, on: bool
) -> list[tuple[int, bytes, None]]:
    """Everyone logs in (with an Accounting-On at the same instant when `on`); their Starts."""
    n = len(credentials)
    requests = []
    for user, pin in credentials:
        authenticator, attrs = access_request(user, pin, SECRET)
        requests.append((ACCESS_REQUEST, attrs, authenticator))
    paced = run_load("127.0.0.1", server.auth_port, SECRET, requests, 512, send_at=[i * PHASE_S / n for i in range(n)])
    if on:
        sent_on = run_load("127.0.0.1", server.acct_port, SECRET, [(ACCOUNTING_REQUEST, accounting_on(), None)], 1)
        answered, login = await asyncio.gather(sent_on, paced)
        assert answered.codes.get(5) == 1, f"Accounting-On not answered: {answered.summary()}"
    else:
        login = await paced
    classes = [reply_attributes(r, CLASS) if r else [] for r in login.replies]
    return [
        (ACCOUNTING_REQUEST, accounting_request("start", user, f"{tag}-{i}", classes=classes[i]), None)
        for i, (user, _) in enumerate(credentials)
        if login.replies[i] is not None and login.replies[i][0] == ACCESS_ACCEPT
    ]


def phase(server: Server, cluster: PrivateCluster, metrics: int, credentials: list[tuple[str, str]], on: bool) -> None:
    tag = "after-on" if on else "no-close"
    load = os.getloadavg()[0]
    starts = asyncio.run(logins(server, credentials, tag, on))
    n = len(starts)
    radiusd, postgres = server.process.pid if server.process else 0, postmaster_pid(cluster.datadir)
    cpu = tree_cpu_seconds(radiusd), tree_cpu_seconds(postgres)
    hook, ran = hook_seconds(metrics), statements(cluster)
    began = time.perf_counter()
    sent = asyncio.run(
        run_load("127.0.0.1", server.acct_port, SECRET, starts, 512, send_at=[i * PHASE_S / n for i in range(n)])
    )
    took = time.perf_counter() - began
    after = statements(cluster)
    sent_per, every_per = (after[0] - ran[0] - 1) / n, (after[1] - ran[1] - 1) / n  # less the one counting them
    hook_after = hook_seconds(metrics)
    per_call = (hook_after[0] - hook[0]) / (hook_after[1] - hook[1])
    radiusd_cpu, postgres_cpu = tree_cpu_seconds(radiusd) - cpu[0], tree_cpu_seconds(postgres) - cpu[1]
    print(f"{tag:9} load {load:5.2f}: {n:,} Starts answered in {took:.1f} s, {n / took:,.0f}/s ({sent.summary()})")
    print(f"{tag:9} per Start: hook {per_call * 1000:.2f} ms, CPU radiusd {radiusd_cpu / n * 1000:.2f} ms + "
          f"PostgreSQL {postgres_cpu / n * 1000:.2f} ms, {sent_per:.1f} statements sent "
          f"({every_per:.1f} with nested ones)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=5000)
    args = parser.parse_args()
    n = args.sessions
    with exit_on_signals(), temporary_cluster("bench-startcost-") as (cluster, root):
        server = None
        try:
            [metrics] = free_tcp_ports(1)
            settings_file, credentials = prepare_databases(cluster, root, 2 * n, metrics_port=metrics)
            with open(cluster.datadir / "postgresql.conf", "a") as conf:
                conf.write("shared_preload_libraries = 'pg_stat_statements'\npg_stat_statements.track = 'all'\n")
            cluster.stop()
            cluster.start()
            cluster.psql("hotspot", "CREATE EXTENSION pg_stat_statements")
            server, _ = write_confdirs(root, cluster, settings_file, False)
            server.start()
            used, open_ = credentials[:n], credentials[n:]
            classes = login_all(server, used, 32, cluster)  # used once: a login, its Start and Stop
            for status, seconds in (("start", 0), ("stop", 60)):
                send(server, [session_packet(status, u, f"used-{i}", seconds, classes[i]) for i, (u, _) in
                              enumerate(used)], 32)  # fmt: skip
            old_sessions_before_reboot(server, cluster, open_)
            print(f"== {n:,} Starts of cards in use with no close before them, then {n:,} right after an "
                  f"Accounting-On closed the NAS's {2 * n:,} sessions ==")  # fmt: skip
            phase(server, cluster, metrics, used, on=False)
            phase(server, cluster, metrics, open_, on=True)
        finally:
            if server is not None:
                server.stop()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
