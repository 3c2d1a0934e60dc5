"""Benchmark: portal heartbeats and status pages under gunicorn, with N sessions online.

A private PostgreSQL, a standalone hotspot billed per second, N cards each with an open portal session
(opened through the billing service, as a login would), then `hotspotctl portal run` (gunicorn) on a
loopback port and a lean asyncio client on keep-alive connections: every guest's signed cookie, POST
/heartbeat (one in ten requests is a full status page instead: by default the page's own refresh without
JavaScript, GET /status?refresh=1; `--status-url /status` for pages guests open), for a fixed time. Prints requests/s
and latency percentiles; at the end, checks that every session was billed exactly its online time and
that the balances agree with the ledger (exit status 1 if not). Usage:

    .venv/bin/python bench/portal_heartbeats.py [--sessions 5000] [--seconds 20] [--connections 16]
        [--rate 1111]   # a fixed offered load instead of saturation (on 1,024 connections)
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flask import Flask
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from devtools.cluster import PrivateCluster, temporary_cluster
from rlm_hotspot.pins import PinVault
from rlm_hotspot.services.access import Policy
from rlm_hotspot.services.catalog import get_hotspot
from rlm_hotspot.services.sessions import open_portal_session
from rlm_hotspot.services.tariff_cache import TariffCache

SECRET = "bench-secret-key-of-at-least-32-characters"
CONNECT_SPACING_S = 0.005
CONNECTS_WITHIN_S = 3  # many connections: all made within this
LOGINS_SPREAD_S = 60
# The warm-up leaves every guest's first heartbeat held in the workers with the minutes of the setup to
# debit: their writers need a second or two for those thousands of rows, which is not the steady state.
SETTLE_AFTER_WARM_UP_S = 3
PRICE_MINOR_PER_HOUR = 120  # the bench tariff: 1.20 an hour, a minor unit every 30 s online
Latencies = dict[str, list[float]]  # seconds, per kind of request: "heartbeat" and "status"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def open_sessions(url: str, key_file: Path, cards_csv: Path) -> list[str]:
    """One open portal session per card, each from its own client address; returns the tokens.

    The logins are spread over the minute before: guests arrive at random moments, so their time debits
    (a minor unit every 30 s at the bench's price) fall due spread out, not for every guest at once.
    """
    with cards_csv.open() as f:
        rows = [(r["card_number"], r["pin"]) for r in csv.DictReader(f)]
    engine = create_engine(url)
    vault, tariffs, policy, now = PinVault.from_file(key_file), TariffCache(), Policy(), datetime.now(UTC)
    spacing = timedelta(seconds=LOGINS_SPREAD_S / max(1, len(rows)))
    tokens = []
    with Session(engine) as db, db.begin():
        hotspot_id = get_hotspot(db, "bench").id
        for i, (number, pin) in enumerate(rows):
            status = open_portal_session(
                db,
                vault,
                tariffs,
                policy,
                card_text=number,
                pin=pin,
                hotspot_id=hotspot_id,
                client_ip=f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}",
                client_mac=None,
                now=now - spacing * (len(rows) - i),
            )
            tokens.append(status.token)
    engine.dispose()
    return tokens


def cookies_for(tokens: list[str]) -> list[str]:
    """The signed session cookie each guest's browser holds after login (token + CSRF token)."""
    signer = Flask("bench")
    signer.secret_key = SECRET
    serializer = signer.session_interface.get_signing_serializer(signer)  # type: ignore[attr-defined]
    return [serializer.dumps({"token": token, "csrf": f"csrf-{i}"}) for i, token in enumerate(tokens)]


def is_status_page(number: int, status_every: int) -> bool:
    """Whether request `number` (a connection's count, offset by the connection's place so that the pages
    of many connections do not all fall on their first request) is a status page."""
    return bool(status_every) and number % status_every == 0


def request_bytes(cookie: str, index: int, number: int, phase: Phase) -> bytes:
    if is_status_page(number, phase.status_every):
        head = f"GET {phase.status_url} HTTP/1.1\r\n"
        body = ""
    else:
        head = "POST /heartbeat HTTP/1.1\r\n"
        body = f"X-CSRF-Token: csrf-{index}\r\nContent-Length: 0\r\n"
    return f"{head}Host: portal\r\nCookie: hotspot_portal={cookie}\r\n{body}\r\n".encode()


@dataclass
class Phase:
    """A stretch of the run: for `seconds`, or `per_connection` requests on each connection."""

    status_every: int
    status_url: str = "/status"
    seconds: float = 600
    per_connection: int | None = None
    rate: float | None = None  # requests a second in all, sent on schedule (None: as fast as answered)
    pause_after: float = 0.0  # idle seconds before the next phase
    latencies: Latencies = field(default_factory=lambda: {"heartbeat": [], "status": []})
    errors: int = 0
    elapsed: float = 0.0


class Browser(asyncio.Protocol):
    """The guests of every `step`-th cookie from `first`, on one keep-alive connection (so one worker).

    A bare protocol rather than asyncio streams: the client shares the two cores with the server it
    measures, and streams cost it ~0.23 ms of CPU per request (a quarter of a core at 1,111/s), this a
    third of that.
    """

    def __init__(self, port: int, cookies: list[str], first: int, step: int, reconnect_every: int) -> None:
        self.port, self.cookies, self.first, self.step = port, cookies, first, step
        self.reconnect_every = reconnect_every
        self.index, self.sent = first, 0
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.request: bytes | None = None  # sent, not yet answered
        self.phase = Phase(status_every=0)
        self.number, self.interval, self.until, self.due, self.started = 0, 0.0, 0.0, 0.0, 0.0
        self.finished: asyncio.Future[None] = self.loop.create_future()

    async def connect(self) -> None:
        # Browsers connect at random moments: a burst of connects would mostly land on whichever gunicorn
        # worker wakes first (and keep-alive connections stay where they landed).
        await asyncio.sleep(self.first * min(CONNECT_SPACING_S, CONNECTS_WITHIN_S / self.step))
        await self.loop.create_connection(lambda: self, "127.0.0.1", self.port)

    async def run(self, phase: Phase) -> None:
        """Without a rate, each request goes as soon as the previous one is answered (saturation). With
        one, request k is due at a fixed time (staggered across connections) and its latency counts from
        when it was due, so a stalled server is charged for every request it held back. `reconnect_every`
        N: a new connection after every N requests, as a browser opens one when the server's keep-alive
        has closed the last (gunicorn's is 2 s; a page beats every 10-30 s)."""
        self.phase, self.number, self.finished = phase, 0, self.loop.create_future()
        self.interval = self.step / phase.rate if phase.rate else 0.0
        now = self.loop.time()
        self.until, self.due = now + phase.seconds, now + self.first * self.interval / self.step
        self._next()
        await self.finished

    def _next(self) -> None:
        phase = self.phase
        if self.loop.time() >= self.until or (phase.per_connection is not None and self.number >= phase.per_connection):
            self.finished.set_result(None)
        elif self.interval and self.due > self.loop.time():
            self.loop.call_at(self.due, self._send)
        else:
            self._send()

    def _send(self) -> None:
        self.started = self.due if self.interval else self.loop.time()
        self.request = request_bytes(self.cookies[self.index], self.index, self.first + self.number, self.phase)
        if self.reconnect_every and self.sent and self.sent % self.reconnect_every == 0 and self.transport:
            self.transport.close()  # connection_lost sends the request on a new one
        elif self.transport is None:
            self._reconnect()
        else:
            self.transport.write(self.request)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport, self.buffer = None, b""
        if self.request is not None:  # the server's keep-alive ran out, or a reconnect: send it again
            self._reconnect()

    def _reconnect(self) -> None:
        self.loop.create_task(self._connect_and_resend())

    async def _connect_and_resend(self) -> None:
        await self.loop.create_connection(lambda: self, "127.0.0.1", self.port)
        if self.request is not None and self.transport is not None:
            self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[:end].lower()
        at = head.find(b"\r\ncontent-length:")
        line_end = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : line_end if line_end >= 0 else None]) if at >= 0 else 0
        if len(self.buffer) < end + 4 + length:
            return
        self.buffer = self.buffer[end + 4 + length :]
        phase, number = self.phase, self.number
        kind = "status" if is_status_page(self.first + number, phase.status_every) else "heartbeat"
        phase.latencies[kind].append(self.loop.time() - self.started)
        phase.errors += head[9:12] != b"200"
        self.request = None
        self.number, self.sent = number + 1, self.sent + 1
        self.index += self.step
        if self.index >= len(self.cookies):  # a guest's heartbeats all come on the connection its page holds
            self.index = self.first
        self.due += self.interval
        self._next()

    def close(self) -> None:
        self.request = None
        if self.transport is not None:
            self.transport.close()


async def load(
    port: int,
    cookies: list[str],
    connections: int,
    phases: list[Phase],
    reconnect_every: int = 0,
    between: Callable[[], None] = lambda: None,
) -> None:
    """The phases one after the other on the same connections (`between` runs after each but the last)."""
    browsers = [Browser(port, cookies, i, connections, reconnect_every) for i in range(connections)]
    await asyncio.gather(*(browser.connect() for browser in browsers))
    for number, phase in enumerate(phases):
        if number:
            between()
        started = time.perf_counter()
        await asyncio.gather(*(browser.run(phase) for browser in browsers))
        phase.elapsed = time.perf_counter() - started
        await asyncio.sleep(phase.pause_after)
    for browser in browsers:
        browser.close()


def busy_cpu_seconds() -> float:
    """CPU time the whole machine has spent busy (every process: PostgreSQL, gunicorn, this client)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    idle, iowait = fields[3], fields[4]
    return (sum(fields) - idle - iowait) / os.sysconf("SC_CLK_TCK")


def percentiles(seconds: list[float]) -> str:
    ordered = sorted(seconds)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000

    return f"p50 {pct(50):.1f}  p90 {pct(90):.1f}  p99 {pct(99):.1f}  max {ordered[-1] * 1000:.1f}"


def connections_per_worker(port: int) -> str:
    """How the kernel spread the client's connections over the workers' listening sockets (`reuse_port`
    hashes each connection: with few connections one worker may get far more, and keep-alive keeps them)."""
    try:
        listing = subprocess.run(
            ["ss", "-tnpH", "state", "established", f"( sport = :{port} )"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "split over workers unknown: no ss"
    counts = Counter(re.findall(r"pid=(\d+)", listing))
    return "per worker " + " / ".join(str(n) for _, n in counts.most_common())


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the portal exited with status {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the portal did not start listening")


def warm_up(cookies: list[str], connections: int) -> Phase:
    """Every guest's first sign of life since the login: it bills the minutes the setup took (and the worker
    reads the session once); what follows on the same connections is the steady state."""
    return Phase(status_every=0, per_connection=-(-len(cookies) // connections), pause_after=SETTLE_AFTER_WARM_UP_S)


@contextmanager
def serving_portal(
    cluster: PrivateCluster, root: Path, sessions: int, workers: int, threads: int
) -> Iterator[tuple[subprocess.Popen[bytes], int, list[str]]]:
    """A standalone hotspot billed per second with `sessions` guests online, and `hotspotctl portal run`
    (gunicorn) serving it on a loopback port: (its process, the port, every guest's cookie). It is stopped with
    SIGTERM on the way out (its workers write what they hold before they exit)."""
    env = {
        **os.environ,
        "HOTSPOT_CONFIG": os.devnull,
        "HOTSPOT_DATABASE_URL": cluster.url("bench"),
        "HOTSPOT_PIN_KEY_FILE": str(root / "pin.keys"),
        "HOTSPOT_PORTAL_SECRET_KEY": SECRET,
        "HOTSPOT_PORTAL_URL": "http://portal/",  # the Host the client sends; others are redirected
    }
    ctl = [str(Path(sys.executable).with_name("hotspotctl"))]

    def run(*cmd: str) -> None:
        subprocess.run(ctl + list(cmd), env=env, check=True, capture_output=True, text=True)

    run("db", "init")
    run("tariff", "add", "bench", "--per-hour", f"{PRICE_MINOR_PER_HOUR / 100:.2f}")
    run(
        "hotspot", "add", "bench", "--timezone", "Europe/Moscow", "--tariff", "bench", "--mode", "standalone",
        "--heartbeat", "on", "--heartbeat-timeout", "3600",
    )  # fmt: skip
    cards_csv = root / "cards.csv"
    run("cards", "generate", "--count", str(sessions), "--value", "100.00", "--hotspot", "bench",
        "--output", str(cards_csv))  # fmt: skip
    opened = time.perf_counter()
    tokens = open_sessions(cluster.url("bench"), root / "pin.keys", cards_csv)
    print(f"{len(tokens)} portal sessions opened in {time.perf_counter() - opened:.1f} s")
    port = free_port()
    portal = subprocess.Popen(
        [*ctl, "portal", "run", "--hotspot", "bench", "--bind", f"127.0.0.1:{port}", "--plain-http",
         "--workers", str(workers), "--threads", str(threads)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port, portal)
        # gunicorn forks its workers up to 0.1 s apart, each with its own listening socket: connections
        # made before the last one listens all go to the others (and keep-alive keeps them there).
        time.sleep(2)
        yield portal, port, cookies_for(tokens)
    finally:
        portal.send_signal(signal.SIGTERM)
        portal.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument(
        "--connections",
        type=int,
        help="keep-alive connections (default: 16 at saturation; 1,024 with --rate, since the kernel hashes each "
        "to a worker's socket and 16 split as unevenly as 12 / 4, which put 3/4 of the load on one worker)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="measured runs, one after the other")
    parser.add_argument("--reconnect-every", type=int, default=0, help="a new connection after N requests (0: never)")
    parser.add_argument(
        "--rate", type=float, help="requests a second, sent on schedule (default: as fast as they are answered)"
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="as `portal run`: one per core")
    parser.add_argument("--threads", type=int, default=2, help="as `portal run`")
    parser.add_argument(
        "--status-every", type=int, default=10, help="one request in N is a full status page (0: heartbeats only)"
    )
    parser.add_argument(
        "--status-url",
        default="/status?refresh=1",
        help="the status page asked for: the page's own no-JS refresh (billed like a heartbeat), or /status (a "
        "page the guest opens: written at once)",
    )
    args = parser.parse_args()
    if args.connections is None:
        args.connections = 1024 if args.rate else 16
    args.connections = min(args.connections, args.sessions)  # each guest on one connection at most
    with temporary_cluster("bench-portal-", "bench") as (cluster, root):
        with serving_portal(cluster, root, args.sessions, args.workers, args.threads) as (_portal, port, cookies):
            # Warm-up: every guest's first sign of life since the login (it bills the minutes the setup took,
            # and the worker reads the session once); the measured run then goes on on the same connections:
            # the steady state of guests who are online and whose page keeps beating.
            warm = warm_up(cookies, args.connections)
            runs = [Phase(args.status_every, args.status_url, args.seconds, rate=args.rate) for _ in range(args.repeat)]
            debit_counts: list[int] = []
            split: list[str] = []  # connections per worker, just before the first measured run

            busy: list[float] = []  # CPU seconds the whole machine spent, at the start and end of each run

            def count_debits() -> None:
                busy.append(busy_cpu_seconds())
                debit_counts.append(int(cluster.psql("bench", "SELECT count(*) FROM ledger WHERE cause = 'time'")))
                if len(debit_counts) == 1:  # before the first measured run: a process started within it would count
                    split.append(connections_per_worker(port))

            asyncio.run(load(port, cookies, args.connections, [warm, *runs], args.reconnect_every, count_debits))
            count_debits()
            warm_n, warm_s = len(warm.latencies["heartbeat"]), warm.elapsed
            print(f"warm-up: every guest's first request, {warm_n} in {warm_s:.1f} s = {warm_n / warm_s:,.0f}/s")
            spread = split[0] if split else "split over workers unknown"
            print(
                f"gunicorn: {args.workers} workers x {args.threads} threads (gthread); client: {args.connections} "
                f"keep-alive connections ({spread}); {os.cpu_count()} cores shared by PostgreSQL, gunicorn and the "
                "client"
            )
            mix = f"1 in {args.status_every} a GET {args.status_url}" if args.status_every else "POST /heartbeat only"
            if args.reconnect_every:
                mix += f"; a new connection every {args.reconnect_every} requests"
            if args.rate:
                mix += f"; offered {args.rate:,.0f}/s on schedule, latency counted from when each was due"
            print(mix)
            for number, run in enumerate(runs):
                total = sum(len(kind) for kind in run.latencies.values())
                debits = debit_counts[number + 1] - debit_counts[number]
                cpu = busy[number + 1] - busy[number]
                share = cpu / run.elapsed / (os.cpu_count() or 1)
                print(f"run {number + 1}: {total} requests in {run.elapsed:.1f} s = {total / run.elapsed:,.0f}/s, "
                      f"non-200: {run.errors}, time debits posted: {debits}; "
                      f"CPU busy {share:.0%}, {cpu / total * 1000:.2f} ms a request")  # fmt: skip
                for kind, label in (("heartbeat", "POST /heartbeat"), ("status", f"GET {args.status_url}")):
                    if seconds := run.latencies[kind]:
                        print(f"  {label:22} {len(seconds) / run.elapsed:6,.0f}/s  latency ms: {percentiles(seconds)}")
        return money_check(cluster)


def money_check(cluster: PrivateCluster) -> int:
    """After the load, every session billed exactly its online time, once, and every balance agrees with
    the ledger; 1 (a failed run) if not."""
    counts = cluster.psql(
        "bench",
        f"""SELECT count(*),
                   count(*) FILTER (WHERE s.time_cost_num <> s.seconds * {PRICE_MINOR_PER_HOUR}
                                       OR s.charged <> ceil(s.time_cost_num / 3600.0)),
                   count(*) FILTER (WHERE s.charged <> COALESCE((SELECT -sum(l.amount) FROM ledger l
                                                               WHERE l.session_id = s.id AND l.cause = 'time'), 0)),
                   count(*) FILTER (WHERE a.balance <> (SELECT sum(l.amount) FROM ledger l WHERE l.account_id = a.id))
            FROM sessions s JOIN cards c ON c.id = s.card_id JOIN accounts a ON a.id = c.account_id""",
    )
    sessions, time_wrong, charges_wrong, balances_wrong = counts.strip().split("|")
    print(
        f"money: {sessions} sessions; billed other than their online time (rounded up): {time_wrong}; charged "
        f"other than their ledger rows: {charges_wrong}; balances other than their ledger: {balances_wrong}"
    )
    return 0 if time_wrong == charges_wrong == balances_wrong == "0" else 1


if __name__ == "__main__":
    sys.exit(main())
