"""Benchmark: portal heartbeats and status pages under gunicorn, with N sessions online.

A private PostgreSQL, a standalone hotspot billed per second, N cards each with an open portal session
(opened through the billing service, as a login would), then `hotspotctl portal run` (gunicorn) on a
loopback port and a lean asyncio client on keep-alive connections: every guest's signed cookie, POST
/heartbeat (one in ten requests is a full GET /status page instead), for a fixed time. Prints requests/s
and latency percentiles. Usage:

    .venv/bin/python bench/portal_heartbeats.py [--sessions 5000] [--seconds 20] [--connections 16]
        [--rate 1111 --connections 64]   # a fixed offered load instead of saturation
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from flask import Flask
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from rlm_hotspot.devcluster import temporary_cluster
from rlm_hotspot.pins import PinVault
from rlm_hotspot.services.access import Policy
from rlm_hotspot.services.catalog import get_hotspot
from rlm_hotspot.services.sessions import open_portal_session
from rlm_hotspot.services.tariff_cache import TariffCache

SECRET = "bench-secret-key-of-at-least-32-characters"
Latencies = dict[str, list[float]]  # seconds, per kind of request: "heartbeat" and "status"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def open_sessions(url: str, key_file: Path, cards_csv: Path) -> list[str]:
    """One open portal session per card, each from its own client address; returns the tokens."""
    with cards_csv.open() as f:
        rows = [(r["card_number"], r["pin"]) for r in csv.DictReader(f)]
    engine = create_engine(url)
    vault, tariffs, policy, now = PinVault.from_file(key_file), TariffCache(), Policy(), datetime.now(UTC)
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
                now=now,
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
    return bool(status_every) and number % status_every == 0


def request_bytes(cookie: str, index: int, number: int, status_every: int) -> bytes:
    if is_status_page(number, status_every):
        head = "GET /status HTTP/1.1\r\n"
        body = ""
    else:
        head = "POST /heartbeat HTTP/1.1\r\n"
        body = f"X-CSRF-Token: csrf-{index}\r\nContent-Length: 0\r\n"
    return f"{head}Host: portal\r\nCookie: hotspot_portal={cookie}\r\n{body}\r\n".encode()


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await reader.readexactly(length)
    return status


async def connection(
    port: int,
    cookies: list[str],
    first: int,
    step: int,
    until: float,
    out: Latencies,
    limit: int | None,
    status_every: int,
    interval: float | None = None,
    reconnect_every: int = 0,
) -> int:
    """One guest's browser per `step`-th cookie, on one keep-alive connection (so one gunicorn worker).

    Without `interval`, each request goes as soon as the previous one is answered (saturation). With it,
    request k is due at a fixed time (`interval` apart, staggered across connections) and its latency
    counts from when it was due, so a stalled server is charged for every request it held back.
    `reconnect_every` N: a new connection after every N requests, as a browser opens one when the
    server's keep-alive has closed the last (gunicorn's is 2 s; a page beats every 10-30 s).
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    errors, number, index = 0, 0, first
    due = time.perf_counter() + (first * interval / step if interval else 0)
    while time.perf_counter() < until and (limit is None or number < limit):
        if interval:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
        started = due if interval else time.perf_counter()
        if reconnect_every and number and number % reconnect_every == 0:
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request_bytes(cookies[index], index, number, status_every))
        status = await read_response(reader)
        out["status" if is_status_page(number, status_every) else "heartbeat"].append(time.perf_counter() - started)
        errors += status != 200
        number += 1
        index = (index + step) % len(cookies)
        due += interval or 0
    writer.close()
    return errors


async def load(
    port: int,
    cookies: list[str],
    seconds: float,
    connections: int,
    status_every: int,
    per_connection: int | None = None,
    rate: float | None = None,
    reconnect_every: int = 0,
) -> tuple[Latencies, int, float]:
    """Requests on `connections` keep-alive connections for `seconds`: as fast as answered, or `rate` a second."""
    latencies: Latencies = {"heartbeat": [], "status": []}
    started = time.perf_counter()
    until = started + seconds
    interval = connections / rate if rate else None
    errors = await asyncio.gather(
        *(
            connection(
                port, cookies, i, connections, until, latencies, per_connection, status_every, interval, reconnect_every
            )
            for i in range(connections)
        )
    )
    return latencies, sum(errors), time.perf_counter() - started


def percentiles(seconds: list[float]) -> str:
    ordered = sorted(seconds)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000

    return f"p50 {pct(50):.1f}  p90 {pct(90):.1f}  p99 {pct(99):.1f}  max {ordered[-1] * 1000:.1f}"


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--reconnect-every", type=int, default=0, help="a new connection after N requests (0: never)")
    parser.add_argument(
        "--rate", type=float, help="requests a second, sent on schedule (default: as fast as they are answered)"
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="as `portal run`: one per core")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--status-every", type=int, default=10, help="one request in N is a full GET /status (0: heartbeats only)"
    )
    args = parser.parse_args()
    portal = None
    with temporary_cluster("bench-portal-", "bench") as (cluster, root):
        try:
            env = {
                **os.environ,
                "HOTSPOT_CONFIG": "",
                "HOTSPOT_DATABASE_URL": cluster.url("bench"),
                "HOTSPOT_PIN_KEY_FILE": str(root / "pin.keys"),
                "HOTSPOT_PORTAL_SECRET_KEY": SECRET,
                "HOTSPOT_PORTAL_URL": "http://portal/",  # the Host the client sends; others are redirected
            }
            ctl = [str(Path(sys.executable).with_name("hotspotctl"))]

            def run(*cmd: str) -> None:
                subprocess.run(ctl + list(cmd), env=env, check=True, capture_output=True, text=True)

            run("db", "init")
            run("tariff", "add", "bench", "--per-hour", "1.20")
            run(
                "hotspot", "add", "bench", "--timezone", "Europe/Moscow", "--tariff", "bench", "--mode", "standalone",
                "--heartbeat", "on", "--heartbeat-timeout", "3600",
            )  # fmt: skip
            cards_csv = root / "cards.csv"
            run("cards", "generate", "--count", str(args.sessions), "--value", "100.00", "--hotspot", "bench",
                "--output", str(cards_csv))  # fmt: skip
            opened = time.perf_counter()
            tokens = open_sessions(cluster.url("bench"), root / "pin.keys", cards_csv)
            print(f"{len(tokens)} portal sessions opened in {time.perf_counter() - opened:.1f} s")
            port = free_port()
            portal = subprocess.Popen(
                [*ctl, "portal", "run", "--hotspot", "bench", "--bind", f"127.0.0.1:{port}", "--plain-http",
                 "--workers", str(args.workers), "--threads", str(args.threads)],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            wait_for_port(port, portal)
            cookies = cookies_for(tokens)
            # Warm-up: every guest's first sign of life since the login (it bills the minutes the setup took,
            # and the worker reads the session once); the measured run is then the steady state of guests
            # who are online and whose page keeps beating.
            warm, _, warm_s = asyncio.run(
                load(port, cookies, 600, args.connections, 0, per_connection=-(-len(cookies) // args.connections))
            )
            warm_n = len(warm["heartbeat"])
            print(f"warm-up: every guest's first request, {warm_n} in {warm_s:.1f} s = {warm_n / warm_s:,.0f}/s")
            debits_before = int(cluster.psql("bench", "SELECT count(*) FROM ledger WHERE cause = 'time'").strip())
            latencies, errors, elapsed = asyncio.run(
                load(
                    port,
                    cookies,
                    args.seconds,
                    args.connections,
                    args.status_every,
                    rate=args.rate,
                    reconnect_every=args.reconnect_every,
                )
            )
            print(
                f"gunicorn: {args.workers} workers x {args.threads} threads (gthread); client: {args.connections} "
                f"keep-alive connections; {os.cpu_count()} cores shared by PostgreSQL, gunicorn and the client"
            )
            mix = f"1 in {args.status_every} a GET /status" if args.status_every else "POST /heartbeat only"
            if args.reconnect_every:
                mix += f"; a new connection every {args.reconnect_every} requests"
            if args.rate:
                mix += f"; offered {args.rate:,.0f}/s on schedule, latency counted from when each was due"
            total = sum(len(kind) for kind in latencies.values())
            print(f"requests: {total} in {elapsed:.1f} s = {total / elapsed:,.0f}/s ({mix}), non-200: {errors}")
            for kind, label in (("heartbeat", "POST /heartbeat"), ("status", "GET /status")):
                if seconds := latencies[kind]:
                    print(f"  {label:15} {len(seconds) / elapsed:6,.0f}/s  latency ms: {percentiles(seconds)}")
            debits = int(cluster.psql("bench", "SELECT count(*) FROM ledger WHERE cause = 'time'").strip())
            print(f"time debits posted during the run: {debits - debits_before}")
        finally:
            if portal is not None:
                portal.send_signal(signal.SIGTERM)
                portal.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
