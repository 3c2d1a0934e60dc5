"""Benchmark: a NAS reboot storm against a real radiusd with rlm_hotspot (issue 19).

A NAS with `--sessions` open sessions (logged in, started, one Interim billed) reboots: it sends
Accounting-On and at once every guest logs in again and starts a new session within `--storm` seconds (the
logins paced over the first half, their Starts over the second half, each Start echoing its login's
Class). Printed: the login answers (p50/p99, goal p99 <= 1 s, every one accepted), the Start answers,
whether every old session was closed at its last counters and billed the same, whether every new session
is open and the ledger adds up, and the time from the Accounting-On until the ledger is complete.

    .venv/bin/python bench/reboot_storm.py --sessions 5000                      # direct: billed in the hook
    .venv/bin/python bench/reboot_storm.py --sessions 5000 --buffered-accounting  # billed by the importer
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

from accounting_billed import login_all, send
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

from devtools.cluster import PrivateCluster, temporary_cluster
from devtools.processes import exit_on_signals

INTERIM_S = 300  # the old sessions' last counters: this far into them (bench/radius_vs_rlm_sql.session_packet)
WINDOW = 32  # the preparation's requests in flight
RETRANSMITS = 20  # times a NAS sends again a Start left unanswered for run_load's 5 s (the bench then gives up)


def count(cluster: PrivateCluster, query: str) -> int:
    return int(cluster.psql("hotspot", query).strip())


def old_sessions_before_reboot(server: Server, cluster: PrivateCluster, credentials: list[tuple[str, str]]) -> None:
    """Every guest logged in with a Start and an Interim, each Interim sent soon after its Start was answered
    (two windows of packets later). Not every Interim after every Start: under load an Interim then came as
    long after its Start as all the Starts took, and past RESTART_TOLERANCE_S it said its session began later
    than its Start did — another session (the NAS counting from zero again), which closed the Start's one
    `Lost-Service` with no counters."""
    classes = login_all(server, credentials, WINDOW, cluster)
    slots = []
    for i, (user, _) in enumerate(credentials):
        slots.append((2 * i, session_packet("start", user, f"old-{i}", 0, classes[i])))
        slots.append((2 * (i + 2 * WINDOW) + 1, session_packet("interim", user, f"old-{i}", INTERIM_S, classes[i])))
    send(server, [packet for _, packet in sorted(slots, key=lambda slot: slot[0])], WINDOW)


def wait_for(cluster: PrivateCluster, query: str, expected: int, timeout: float = 900) -> float:
    """perf_counter when `query` first counts `expected`."""
    deadline = time.monotonic() + timeout
    while (found := count(cluster, query)) < expected:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{found} of {expected}: {query}")
        time.sleep(0.1)
    return time.perf_counter()


async def storm(server: Server, credentials: list[tuple[str, str]], seconds: float) -> tuple[str, str, str, list[int]]:
    """Accounting-On and, from the same instant, the logins (first half of `seconds`); then their Starts
    (second half), each sent again while it goes unanswered, as a NAS does."""
    half, n = seconds / 2, len(credentials)
    logins = []
    for user, pin in credentials:
        authenticator, attrs = access_request(user, pin, SECRET)
        logins.append((ACCESS_REQUEST, attrs, authenticator))
    on, login = await asyncio.gather(  # a NAS does not hold its guests back until its Accounting-On is answered
        run_load("127.0.0.1", server.acct_port, SECRET, [(ACCOUNTING_REQUEST, accounting_on(), None)], 1),
        run_load("127.0.0.1", server.auth_port, SECRET, logins, 512, send_at=[i * half / n for i in range(n)]),
    )
    assert on.codes.get(5) == 1, f"Accounting-On not answered: {on.summary()}"
    classes = [reply_attributes(r, CLASS) if r else [] for r in login.replies]
    starts = [  # a NAS starts a session only for an accepted login
        (ACCOUNTING_REQUEST, accounting_request("start", user, f"new-{i}", classes=classes[i]), None)
        for i, (user, _) in enumerate(credentials)
        if login.replies[i] is not None and login.replies[i][0] == ACCESS_ACCEPT
    ]
    started = await run_load(
        "127.0.0.1", server.acct_port, SECRET, starts, 512, send_at=[i * half / len(starts) for i in range(len(starts))]
    )
    unanswered = [start for start, reply in zip(starts, started.replies, strict=True) if reply is None]
    for _ in range(RETRANSMITS):
        if not unanswered:
            break
        again = await run_load("127.0.0.1", server.acct_port, SECRET, unanswered, 512)
        unanswered = [start for start, reply in zip(unanswered, again.replies, strict=True) if reply is None]
    resent = f"; {started.timeouts:,} sent again, {len(unanswered):,} never answered" if started.timeouts else ""
    return on.summary(), login.summary(), started.summary() + resent, [login.codes.get(2, 0), started.codes.get(5, 0)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=5000)
    parser.add_argument("--storm", type=float, default=10.0, help="seconds over which the logins and Starts come")
    parser.add_argument("--buffered-accounting", dest="buffered", action="store_true")
    args = parser.parse_args()
    keep = bool(os.environ.get("BENCH_KEEP"))
    mode = "buffered, billed by the importer" if args.buffered else "direct"
    # SIGTERM/SIGHUP (`timeout`, a closed terminal) unwind like Ctrl-C: radiusd, the importer and the cluster stop
    with exit_on_signals(), temporary_cluster("bench-storm-", keep=keep) as (cluster, root):
        server = None
        try:
            settings_file, credentials = prepare_databases(cluster, root, args.sessions)
            server, _ = write_confdirs(root, cluster, settings_file, args.buffered)
            server.start()  # buffered: with `hotspotctl radius import` beside it
            run(server, cluster, credentials, args.storm, mode)
        finally:
            if server is not None:
                server.stop()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


def run(server: Server, cluster: PrivateCluster, credentials: list[tuple[str, str]], seconds: float, mode: str) -> None:
    """Prepare the old sessions, run the storm, wait for the ledger and check it."""
    old_sessions_before_reboot(server, cluster, credentials)
    n = len(credentials)
    wait_for(cluster, f"SELECT count(*) FROM sessions WHERE acct_session_id LIKE 'old-%' "
                      f"AND seconds = {INTERIM_S}", n)  # fmt: skip
    print(f"== reboot storm ({mode}): {n:,} open sessions, Accounting-On, {n:,} logins + Starts in "
          f"{seconds:g} s; load average {os.getloadavg()[0]:.2f} ==")  # fmt: skip
    began = time.perf_counter()
    on, login, start, (accepted, answered) = asyncio.run(storm(server, credentials, seconds))
    sent = time.perf_counter() - began
    print(f"Acct-On  {on}")
    print(f"logins   {login}")
    print(f"Starts   {start}")
    print(f"sent and answered in {sent:.1f} s: {accepted:,} of {n:,} logins accepted, "
          f"{answered:,} of {n:,} Starts answered the first time")  # fmt: skip
    done = wait_for(
        cluster,
        "SELECT (SELECT count(*) FROM sessions WHERE acct_session_id LIKE 'new-%' AND status = 'open') "
        "+ (SELECT count(*) FROM sessions WHERE acct_session_id LIKE 'old-%' AND status = 'closed')",
        n + accepted,
        timeout=300,
    )
    print(f"ledger complete {done - began:.1f} s after the Accounting-On was sent")
    report(cluster, n)


def report(cluster: PrivateCluster, n: int) -> None:
    """The checks: old sessions closed at their last counters and charged alike; the ledger adds up."""
    closed = cluster.psql(
        "hotspot",
        "SELECT seconds, input_octets, output_octets, charged, terminate_cause, count(*) FROM sessions "
        "WHERE acct_session_id LIKE 'old-%' GROUP BY 1, 2, 3, 4, 5",
    ).strip()
    print(f"old sessions (seconds|in|out|charged|cause|count), expect one row "
          f"{INTERIM_S}|{INTERIM_S * 1000}|{INTERIM_S * 10_000}|..|{n}: {closed}")  # fmt: skip
    unbilled = count(
        cluster,
        "SELECT count(*) FROM sessions s WHERE acct_session_id LIKE 'old-%' AND charged <> "
        "-(SELECT coalesce(sum(amount), 0) FROM ledger l WHERE l.session_id = s.id AND amount < 0)",
    )
    held = count(cluster, "SELECT count(*) FROM quarantine")
    balanced = count(
        cluster,
        "SELECT count(*) FROM accounts a WHERE balance <> (SELECT coalesce(sum(amount), 0) FROM ledger l "
        "WHERE l.account_id = a.id)",
    )
    new_open = count(cluster, "SELECT count(*) FROM sessions WHERE acct_session_id LIKE 'new-%' AND status = 'open'")
    print(f"checks: {unbilled} old sessions whose charge is not in the ledger, {held} quarantine rows, "
          f"{balanced} accounts whose ledger does not add up (all 0)")  # fmt: skip
    print(f"checks: {new_open:,} of {n:,} new sessions open")


if __name__ == "__main__":
    sys.exit(main())
