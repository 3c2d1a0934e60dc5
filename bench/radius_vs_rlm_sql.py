"""Benchmark: a real radiusd with rlm_hotspot against a real radiusd with FreeRADIUS's own rlm_sql.

Both run in one go on the same private PostgreSQL (rlm_sql on its standard schema — radcheck, radreply,
radacct, radpostauth — in a database of its own), threaded as in production (`freeradius -f`), with the
same users, driven by the same load: distinct users, a window of outstanding requests. Printed per
server and phase: requests/s, p50, p99; then the ratio rlm_hotspot / rlm_sql. Run on an empty history and
again after loading a large one (closed sessions / radacct rows).

    .venv/bin/python bench/radius_vs_rlm_sql.py --users 10000 --window 64 --history 2000000

`--logins-only` drives the Access-Requests alone and prints, per server, the CPU a login cost PostgreSQL
and radiusd (as bench/db_cost.py counts it: /proc, every process of the tree) beside its rate and p99.

rlm_hotspot does every billing check (card state, validity, lockout, simultaneous use, tariff bands) and
the ledger writes; rlm_sql checks a cleartext password and writes radacct/radpostauth.

Accounting is buffered by default, as `hotspotctl radius install --buffered-accounting` sets it up: radiusd
writes the detail file and answers, and `hotspotctl radius import` (started beside it) bills the file in
batches. The accounting phases' rates are what radiusd *answers*; the `billing` line is what the importer
*bills*: every packet of the three phases, from the first Start sent until the last one is billed.
`--direct` bills before answering (no importer).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cpu import postmaster_pid, tree_cpu_seconds
from radload import (
    ACCESS_REQUEST,
    ACCOUNTING_REQUEST,
    CLASS,
    Outcome,
    access_request,
    accounting_request,
    reply_attributes,
    run_load,
)
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from devtools.cluster import PrivateCluster, temporary_cluster
from devtools.ha import free_tcp_ports
from devtools.processes import Processes
from rlm_hotspot.db import migrate
from rlm_hotspot.pins import PinVault, create_key_file
from rlm_hotspot.radius import config as radius_config
from rlm_hotspot.services import cards, catalog

SECRET = b"benchsecret"
SQL_SCHEMA = Path("/etc/freeradius/3.0/mods-config/sql/main/postgresql/schema.sql")
RADIUSD_USER = "nobody"
HOTSPOTCTL = str(Path(sys.executable).with_name("hotspotctl"))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    name: str
    confdir: Path
    auth_port: int
    acct_port: int
    process: subprocess.Popen[bytes] | None = None
    # buffered accounting: the `hotspotctl radius import` that bills the spool, started and stopped with radiusd
    importer_command: list[str] | None = None
    importer: subprocess.Popen[bytes] | None = None
    # runs radiusd under a tool (bench/radius_soak.py --heaptrack)
    wrapper: Sequence[str] = ()

    # what started them, and stops them (devtools.processes): each in a process group of its own
    processes: Processes = field(default_factory=Processes)

    def start(self) -> None:
        command = [*radius_config.as_user(RADIUSD_USER), *self.wrapper, "freeradius", "-f", "-d", str(self.confdir)]
        self.process = self.processes.start(command, self.confdir / "log" / "stdout.log", signal.SIGTERM)
        deadline = time.monotonic() + (300 if self.wrapper else 30)  # heaptrack slows the start tenfold
        logfile = self.confdir / "log" / "radius.log"
        while time.monotonic() < deadline:
            if logfile.exists() and radius_config.READY_LINE in logfile.read_text(errors="replace"):
                if self.importer_command is not None:
                    log = self.confdir / "log" / "importer.log"
                    self.importer = self.processes.start(self.importer_command, log, signal.SIGTERM)
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} radiusd did not start; see {self.confdir}/log")

    def radiusd_pid(self) -> int:
        """radiusd's pid: the process started, or its descendant under a wrapper."""
        assert self.process is not None
        pending = [self.process.pid]
        while pending:
            pid = pending.pop(0)
            if Path(f"/proc/{pid}/comm").read_text().strip() == "freeradius":
                return pid
            pending += [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        raise RuntimeError(f"{self.name}: no radiusd under {self.process.pid}")

    def pids(self) -> list[int]:
        """radiusd's and (buffered) the importer's: together they bill accounting."""
        return [process.pid for process in (self.process, self.importer) if process is not None]

    def stop(self) -> None:
        """Stop the importer and radiusd, killing what ignores SIGTERM: a bench that gives up must not leave
        them running (a radiusd deep in a queue of hook calls can take longer than the wait)."""
        if self.wrapper and self.process and self.process.poll() is None:
            os.kill(self.radiusd_pid(), signal.SIGTERM)  # a wrapper (heaptrack) ends with it, after writing its file
            self.processes.stop(self.process, 0, timeout=300)  # signal 0: none of its own, only the wait
        for process in (self.importer, self.process):
            if process:
                self.processes.stop(process, timeout=30)


def prepare_databases(
    cluster: PrivateCluster, root: Path, users: int, *, metrics_port: int | None = None
) -> tuple[str, list[tuple[str, str]]]:
    """Our schema with one hotspot, NAS 127.0.0.1 and `users` cards; rlm_sql's with the same users. The module
    serves its metrics on `metrics_port`, by default a free one: never the production default (9479), which a
    radiusd on this machine or another bench may hold."""
    cluster.create_database("hotspot")
    cluster.create_database("radius")
    url = cluster.url("hotspot")
    engine = create_engine(url)
    migrate.upgrade(engine)
    key_file = root / "pin.keys"
    create_key_file(key_file)
    vault = PinVault.from_file(key_file)
    now = datetime.now(UTC)
    with Session(engine) as session, session.begin():
        catalog.init_installation(session, "EUR", 2)
        catalog.add_tariff(
            session,
            catalog.TariffSpec(
                name="bench", time_price=120, time_unit_seconds=3600, traffic_price=1, time_increment_seconds=60
            ),
        )
        catalog.add_hotspot(
            session, catalog.HotspotSpec(name="bench", timezone="Europe/Moscow", tariff="bench", heartbeat="off")
        )
        catalog.add_nas(
            session,
            name="loopback",
            hotspot="bench",
            ip_address="127.0.0.1",
            secret=SECRET.decode(),
            coa_port=3799,
            vendor="mikrotik",
        )
        batch = cards.generate_batch(session, vault, cards.BatchSpec(count=users, face_value=100_000), now, "encrypted")
    engine.dispose()
    credentials = list(zip(batch.numbers, batch.pins, strict=True))
    cluster.psql("radius", SQL_SCHEMA.read_text())
    rows = "\n".join(f"{n}\tCleartext-Password\t:=\t{p}" for n, p in credentials)
    replies = "\n".join(f"{n}\tSession-Timeout\t=\t3600" for n, _ in credentials)
    copy_in(cluster, "radius", "radcheck (username, attribute, op, value)", rows)
    copy_in(cluster, "radius", "radreply (username, attribute, op, value)", replies)
    settings = root / "hotspot.toml"
    port = free_tcp_ports(1)[0] if metrics_port is None else metrics_port
    settings.write_text(
        f'[database]\nurl = "{url}"\nstatement_timeout_ms = 3000\n[pins]\nkey_file = "{key_file}"\n'
        f"[radius]\nmetrics_port = {port}\n"
    )
    key_file.chmod(0o644)
    return str(settings), credentials


def copy_in(cluster: PrivateCluster, database: str, target: str, rows: str) -> None:
    subprocess.run(
        [
            "psql",
            "-X",
            "-q",
            "-h",
            str(cluster.socket_dir),
            "-p",
            str(cluster.port),
            "-U",
            "postgres",
            "-d",
            database,
            "-c",
            f"COPY {target} FROM STDIN",
        ],
        input=rows + "\n",
        text=True,
        check=True,
    )


def write_confdirs(
    root: Path, cluster: PrivateCluster, settings_file: str, buffered: bool, *, batch_size: int = 2000
) -> tuple[Server, Server]:
    """rlm_hotspot's and rlm_sql's private radiusd; `buffered`: ours with `hotspotctl radius import` (batches of
    at most `batch_size`; under cProfile to $BENCH_PROFILE when set) billing its detail file."""
    clients = [radius_config.Client("loopback", "127.0.0.1", SECRET.decode())]
    ours = Server("rlm_hotspot", root / "radius-hotspot", free_port(), free_port())
    theirs = Server("rlm_sql", root / "radius-sql", free_port(), free_port())
    for server in (ours, theirs):
        radius_config.write_private_confdir(
            server.confdir,
            settings_file=Path(settings_file),
            owner=RADIUSD_USER,
            clients=clients,
            listen=radius_config.Listen(server.auth_port, server.acct_port, "127.0.0.1"),
            buffered=buffered and server is ours,
        )
    if buffered:
        spool = ours.confdir / "log" / "radacct" / "hotspot"
        ours.importer_command = [HOTSPOTCTL, "--config", settings_file, "radius", "import", "--spool", str(spool),
                                 "--batch-size", str(batch_size), "--verbose"]  # fmt: skip
        if os.environ.get("BENCH_PROFILE"):  # the importer's profile, for a look with pstats
            ours.importer_command = [sys.executable, "-m", "cProfile", "-o", os.environ["BENCH_PROFILE"],
                                     *ours.importer_command]  # fmt: skip
    # same server, same clients, same stock modules: only the module doing the work differs
    for ours_only in (radius_config.INSTANCE, radius_config.SQL_INSTANCE):
        (theirs.confdir / "mods-enabled" / ours_only).unlink()
    shutil.copytree(Path("/etc/freeradius/3.0/mods-config/sql"), theirs.confdir / "mods-config" / "sql")
    (theirs.confdir / "mods-enabled" / "sql").write_text(
        'sql {\n\tdialect = "postgresql"\n\tdriver = "rlm_sql_postgresql"\n'
        f'\tserver = "{cluster.socket_dir}"\n\tport = {cluster.port}\n\tlogin = "postgres"\n'
        '\tpassword = ""\n\tradius_db = "radius"\n\tacct_table1 = "radacct"\n\tacct_table2 = "radacct"\n'
        '\tpostauth_table = "radpostauth"\n\tauthcheck_table = "radcheck"\n\tgroupcheck_table = "radgroupcheck"\n'
        '\tauthreply_table = "radreply"\n\tgroupreply_table = "radgroupreply"\n'
        '\tusergroup_table = "radusergroup"\n\tdelete_stale_sessions = yes\n\tread_groups = yes\n'
        "\tpool {\n\t\tstart = 4\n\t\tmin = 4\n\t\tmax = 16\n\t\tspare = 8\n\t\tuses = 0\n\t\tlifetime = 0\n"
        '\t\tidle_timeout = 60\n\t}\n\tclient_table = "nas"\n\tgroup_attribute = "SQL-Group"\n'
        "\t$INCLUDE ${modconfdir}/${.:name}/main/${dialect}/queries.conf\n}\n"
    )
    (theirs.confdir / "sites-enabled" / radius_config.INSTANCE).unlink()
    (theirs.confdir / "sites-enabled" / radius_config.INSTANCE).write_text(
        f"server {radius_config.INSTANCE} {{\n"
        f"listen {{\n\ttype = auth\n\tipaddr = 127.0.0.1\n\tport = {theirs.auth_port}\n}}\n"
        f"listen {{\n\ttype = acct\n\tipaddr = 127.0.0.1\n\tport = {theirs.acct_port}\n}}\n"
        "authorize {\n\tsql\n\tpap\n}\nauthenticate {\n\tAuth-Type PAP {\n\t\tpap\n\t}\n}\n"
        "preacct {\n\tacct_unique\n}\naccounting {\n\tsql\n}\n"
        "post-auth {\n\tsql\n\tPost-Auth-Type REJECT {\n\t\tsql\n\t\tattr_filter.access_reject\n\t}\n}\n}\n"
    )
    for path in theirs.confdir.rglob("*"):
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | (0o755 if path.is_dir() else 0o644))
    return ours, theirs


def load_history(cluster: PrivateCluster, rows: int) -> None:
    """`rows` closed sessions for both: our sessions (with their ledger-less history) and radacct."""
    cluster.psql(
        "hotspot",
        f"""
        INSERT INTO sessions (status, account_id, card_id, hotspot_id, tariff_id, nas_id, source,
                              acct_session_id, auth_token, started_at, last_seen_at, stopped_at, seconds)
        SELECT 'closed', NULL, c.id, 1, 1, 1, 'radius', 'H' || g, 'hist-' || g,
               now() - interval '30 days' + g * interval '1 second', now() - interval '29 days',
               now() - interval '29 days', 600
        FROM generate_series(1, {rows}) g
        JOIN cards c ON c.id = 1 + g % (SELECT count(*) FROM cards);
        ANALYZE sessions;""",
    )
    cluster.psql(
        "radius",
        f"""
        WITH users AS (SELECT username, row_number() OVER (ORDER BY id) - 1 AS i FROM radcheck)
        INSERT INTO radacct (acctsessionid, acctuniqueid, username, nasipaddress, acctstarttime,
                             acctupdatetime, acctstoptime, acctsessiontime, acctinputoctets, acctoutputoctets)
        SELECT 'H' || g, md5('hist' || g), users.username, '127.0.0.1', now() - interval '30 days',
               now() - interval '29 days', now() - interval '29 days', 600, 1000, 1000
        FROM generate_series(1, {rows}) g
        JOIN users ON users.i = g % (SELECT count(*) FROM radcheck);
        ANALYZE radacct;""",
    )


def wait_until_billed(cluster: PrivateCluster, tag: str, users: int) -> float:
    """The moment (perf_counter) the buffer has billed every Stop of the round."""
    while True:
        closed = cluster.psql(
            "hotspot", f"SELECT count(*) FROM sessions WHERE status = 'closed' AND acct_session_id LIKE '{tag}-%'"
        )
        if int(closed.strip()) >= users:
            return time.perf_counter()
        time.sleep(0.2)


SESSION_S = 420  # how long each benchmark session lasts: reported at once, each packet's delay said


def session_packet(status: str, user: str, session_id: str, seconds: int, classes: Sequence[bytes]) -> bytes:
    """One accounting packet of a bench session `seconds` into it: 1 kB/s up, 10 kB/s down, sent as a late
    NAS sends it (Acct-Delay-Time up to the session's end), so the bound on online time never holds it."""
    return accounting_request(
        status,
        user,
        session_id,
        seconds=seconds,
        octets_in=seconds * 1000,
        octets_out=seconds * 10_000,
        classes=classes,
        delay=SESSION_S - seconds,
    )


def drive(
    server: Server,
    credentials: list[tuple[str, str]],
    window: int,
    tag: str,
    cluster: PrivateCluster,
    around: Callable[[str], AbstractContextManager[object]] = lambda _phase: nullcontext(),
    logins_only: bool = False,
    rate: float | None = None,
) -> dict[str, Outcome]:
    """Access-Request for every user, then Start, Interim and Stop for every session; each phase's load
    runs inside `around(phase)` (bench/db_cost.py measures the CPU it costs there); with `rate`, each phase
    sends at most `rate` requests a second (paced, for soaks that share the machine).

    The sessions are reported as a NAS that reports late would: the logins are moved SESSION_S into the
    past and every accounting packet says in Acct-Delay-Time when it was sent, so online time stays
    within the wall clock (rlm_hotspot holds what runs ahead of it: docs/billing.md) and what is measured
    is billing, not the quarantine.
    """
    results: dict[str, Outcome] = {}
    auth_requests = []
    for user, pin in credentials:
        authenticator, attrs = access_request(user, pin, SECRET)
        auth_requests.append((ACCESS_REQUEST, attrs, authenticator))
    send_at = [i / rate for i in range(len(credentials))] if rate else None
    with around("access"):
        results["access"] = asyncio.run(
            run_load("127.0.0.1", server.auth_port, SECRET, auth_requests, window, send_at=send_at)
        )
    if logins_only:
        return results
    classes = [reply_attributes(r, CLASS) if r else [] for r in results["access"].replies]
    if server.name == "rlm_hotspot":
        cluster.psql(
            "hotspot",
            f"UPDATE sessions SET started_at = started_at - interval '{SESSION_S} seconds', "
            f"last_seen_at = last_seen_at - interval '{SESSION_S} seconds' WHERE status = 'pending'",
        )
    for status, seconds in (("start", 0), ("interim", 300), ("stop", SESSION_S)):
        requests = [
            (
                ACCOUNTING_REQUEST,
                session_packet(status, user, f"{tag}-{i}", seconds, classes[i]),
                None,
            )
            for i, (user, _) in enumerate(credentials)
        ]
        with around(status):
            results[status] = asyncio.run(
                run_load("127.0.0.1", server.acct_port, SECRET, requests, window, send_at=send_at)
            )
    return results


def login_cpu(cluster: PrivateCluster, server: Server) -> tuple[float, float]:
    """CPU seconds spent so far by the cluster (every backend) and by radiusd."""
    assert server.process is not None
    return tree_cpu_seconds(postmaster_pid(cluster.datadir)), tree_cpu_seconds(server.process.pid)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--history", type=int, default=2_000_000, help="closed sessions for the second round")
    parser.add_argument(
        "--direct",
        dest="buffered",
        action="store_false",
        help="rlm_hotspot bills accounting before answering (default: buffered accounting, docs/radius.md)",
    )
    parser.add_argument("--logins-only", action="store_true", help="Access-Requests only, with their CPU per login")
    args = parser.parse_args()
    phases = ("access",) if args.logins_only else ("access", "start", "interim", "stop")
    servers: list[Server] = []
    keep = bool(os.environ.get("BENCH_KEEP"))  # keep the config dirs and logs for a look
    with temporary_cluster("bench-radius-", keep=keep) as (cluster, root):
        try:
            settings_file, credentials = prepare_databases(cluster, root, args.users)
            servers = list(write_confdirs(root, cluster, settings_file, args.buffered))
            for server in servers:
                server.start()
            rounds = [("empty history", 0)]
            if args.history:
                rounds.append((f"{args.history:,} closed sessions", args.history))
            for label, history in rounds:
                if history:
                    load_history(cluster, history)
                print(f"\n== {label}: {args.users:,} users, window {args.window} ==")
                figures = {}
                for server in servers:
                    tag = f"{label[:5]}-{server.name}"
                    started = time.perf_counter()
                    cpu_before = login_cpu(cluster, server)
                    figures[server.name] = drive(server, credentials, args.window, tag, cluster,
                                                 logins_only=args.logins_only)  # fmt: skip
                    cpu_after = login_cpu(cluster, server)
                    for phase, outcome in figures[server.name].items():
                        print(f"{server.name:12} {phase:8} {outcome.summary()}")
                    if args.logins_only:
                        spent = (after - before for after, before in zip(cpu_after, cpu_before, strict=True))
                        database, front = (seconds / len(credentials) * 1000 for seconds in spent)
                        print(f"{server.name:12} CPU/login  PostgreSQL {database:.3f} ms  radiusd {front:.3f} ms")
                    elif server.name == "rlm_hotspot" and args.buffered:
                        billed_at = wait_until_billed(cluster, tag, len(credentials))
                        accounting_started = started + figures[server.name]["access"].elapsed
                        packets = 3 * len(credentials)
                        seconds = billed_at - accounting_started
                        print(
                            f"{server.name:12} billing  {packets / seconds:8.0f} packets/s: all {packets:,} accounting "
                            f"packets billed by `radius import` {seconds:.1f} s after the first Start was sent"
                        )
                for phase in phases:
                    ours, theirs = figures["rlm_hotspot"][phase].rate, figures["rlm_sql"][phase].rate
                    print(f"ratio {phase:8} rlm_hotspot / rlm_sql = {ours / theirs:5.2f}")
                print(f"load average {os.getloadavg()[0]:.2f} (1 min)")
                held = cluster.psql("hotspot", "SELECT count(*) FROM quarantine").strip()
                print(f"rlm_hotspot  held     {held} quarantine rows (0: every packet was plausible and billed)")
                # the next round starts from a clean slate of live sessions
                cluster.psql(
                    "hotspot", "UPDATE sessions SET status = 'closed', stopped_at = now() WHERE status <> 'closed'"
                )
        finally:
            for server in servers:
                server.stop()
    if keep:
        print(f"kept {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
