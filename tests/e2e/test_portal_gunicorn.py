"""`hotspotctl portal run`: the portal under real gunicorn (two workers, a listening socket each), with
heartbeats billed in memory by each worker and written by its writer thread, and written at SIGTERM."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.request import urlopen

import pytest
from flask import Flask
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from portal.server import REQUEST_TIMEOUT_S
from rlm_hotspot.pins import PinVault
from rlm_hotspot.services.access import Policy
from rlm_hotspot.services.sessions import open_portal_session
from rlm_hotspot.services.tariff_cache import TariffCache
from tests.portal.conftest import SECRET, World, make_world

WRITE_DELAY_MS = 5000  # long: what is held at SIGTERM can only be written by the exit


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def shop(committed: Engine, vault: PinVault) -> World:
    return make_world(committed, vault, count=2, heartbeat_timeout=300)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """The portal's HOME and XDG_RUNTIME_DIR: where gunicorn would put its per-user control socket."""
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def open_files() -> str:
    """The open-file limit the portal starts with (prlimit's soft:hard): 1,024, as many systems start a
    process with; `portal run` raises it itself."""
    return "1024:"


@pytest.fixture
def workers() -> int:
    return 2


@pytest.fixture
def threads() -> list[str]:
    """`portal run`'s default request threads per worker, unless a test names a number."""
    return []


@pytest.fixture
def metrics_port() -> int:
    return free_port()


@pytest.fixture
def portal(
    database_url: str,
    key_file: Path,
    shop: World,
    home: Path,
    open_files: str,
    workers: int,
    threads: list[str],
    metrics_port: int,
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_RUNTIME_DIR": str(home),
        "HOTSPOT_CONFIG": os.devnull,
        "HOTSPOT_DATABASE_URL": database_url,
        "HOTSPOT_PIN_KEY_FILE": str(key_file),
        "HOTSPOT_PORTAL_SECRET_KEY": SECRET,
        "HOTSPOT_PORTAL_URL": f"http://127.0.0.1:{port}/",
        "HOTSPOT_PORTAL_HEARTBEAT_WRITE_DELAY_MS": str(WRITE_DELAY_MS),
    }
    command = [str(Path(sys.executable).with_name("hotspotctl")), "portal", "run", "--hotspot", "cafe"]
    options = ["--bind", f"127.0.0.1:{port}", "--plain-http", "--workers", str(workers), *threads,
               "--metrics-port", str(metrics_port)]  # fmt: skip
    server = subprocess.Popen(
        ["prlimit", f"--nofile={open_files}", *command, *options],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while True:
        assert server.poll() is None, server.stderr.read().decode() if server.stderr else "the portal exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "the portal did not start listening"
            time.sleep(0.2)
    yield server, port
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def logged_in_cookie(committed: Engine, vault: PinVault, shop: World, card: int = 0) -> tuple[str, str]:
    """A guest's session opened as a login opens it (with the shop's `card`-th card, from an address of
    its own), and the signed cookie the browser holds after it."""
    with Session(committed) as db, db.begin():
        status = open_portal_session(
            db, vault, TariffCache(), Policy(), card_text=shop.cards.numbers[card], pin=shop.cards.pins[card],
            hotspot_id=shop.hotspot_id, client_ip=f"10.0.0.{9 + card}", client_mac=None, now=datetime.now(UTC),
        )  # fmt: skip
    signer = Flask("test")
    signer.secret_key = SECRET
    serializer = signer.session_interface.get_signing_serializer(signer)  # type: ignore[attr-defined]
    return status.token, serializer.dumps({"token": status.token, "csrf": "csrf-1"})


def last_heartbeat(committed: Engine, token: str) -> datetime | None:
    with committed.connect() as db:
        return db.execute(text("SELECT last_heartbeat_at FROM sessions WHERE auth_token = :t"), {"t": token}).scalar()


def test_heartbeats_under_gunicorn_are_written_by_the_writer_and_at_sigterm(
    portal: tuple[subprocess.Popen[bytes], int], committed: Engine, vault: PinVault, shop: World
) -> None:
    server, port = portal
    token, cookie = logged_in_cookie(committed, vault, shop)
    browser = http.client.HTTPConnection("127.0.0.1", port, timeout=10)  # one keep-alive connection
    headers = {"Cookie": f"hotspot_portal={cookie}", "X-CSRF-Token": "csrf-1", "Content-Length": "0"}

    def beat() -> dict:
        browser.request("POST", "/heartbeat", headers=headers)
        response = browser.getresponse()
        assert response.status == 200, response.read()
        return json.loads(response.read())

    first = beat()
    assert first["open"] and first["balance_minor"] <= 500
    deadline = time.monotonic() + 2 * WRITE_DELAY_MS / 1000
    while last_heartbeat(committed, token) is None:  # held, then written by the worker's writer thread
        assert time.monotonic() < deadline, "the writer thread never wrote the heartbeat"
        time.sleep(0.05)
    written = last_heartbeat(committed, token)
    time.sleep(1.1)  # the next one is a second later: a new mark, held (the thread writes again in ~4 s)
    beat()
    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=30) == 0
    assert last_heartbeat(committed, token) > written, "the held heartbeat was lost at shutdown"
    browser.close()


def test_the_metrics_port_sums_the_requests_of_every_worker(
    portal: tuple[subprocess.Popen[bytes], int], metrics_port: int, committed: Engine, vault: PinVault, shop: World
) -> None:
    _, port = portal
    _token, cookie = logged_in_cookie(committed, vault, shop)
    headers = {"Cookie": f"hotspot_portal={cookie}", "X-CSRF-Token": "csrf-1", "Content-Length": "0"}
    for _ in range(6):  # new connections: the kernel spreads them over both workers (reuse_port)
        browser = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for method, path, status in (("POST", "/heartbeat", 200), ("GET", "/no-such-page", 404)):
            browser.request(method, path, headers=headers if method == "POST" else {})
            answer = browser.getresponse()
            answer.read()
            assert answer.status == status
        browser.close()

    scraped = urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode().splitlines()

    assert 'hotspot_portal_requests_total{kind="heartbeat",status="200"} 6.0' in scraped
    assert 'hotspot_portal_requests_total{kind="page",status="404"} 6.0' in scraped


def test_portal_run_leaves_no_per_user_control_socket(portal: tuple[subprocess.Popen[bytes], int], home: Path) -> None:
    """gunicorn's control socket has one path per user: a second portal (another hotspot, the tests beside
    `make demo`) would take it over, so `portal run` turns it off."""
    _, port = portal
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/")
    assert connection.getresponse().status == 200
    assert list(home.rglob("*")) == []


def test_a_status_page_keeps_its_connection_between_heartbeats(portal: tuple[subprocess.Popen[bytes], int]) -> None:
    """gunicorn's default keep-alive (2 s) would make every heartbeat (every 10-30 s) a new connection;
    each worker also has room for thousands of idle ones, within its open-file limit."""
    server, port = portal
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/")
    connection.getresponse().read()
    first = connection.sock.getsockname()
    time.sleep(3)  # longer than gunicorn's default keep-alive
    connection.request("GET", "/")
    assert connection.getresponse().status == 200
    assert connection.sock.getsockname() == first, "the connection was closed while the page waited"
    workers = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    assert len(workers) == 2
    for pid in workers:
        limits = Path(f"/proc/{pid}/limits").read_text()
        soft = next(line.split()[3] for line in limits.splitlines() if line.startswith("Max open files"))
        assert soft == "unlimited" or int(soft) >= 10_100


TCPI_DATA_SEGS_IN = 152  # offset of tcpi_data_segs_in in Linux's struct tcp_info (since 4.6)


def data_segments_received(sock: socket.socket) -> int:
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    return int(struct.unpack_from("I", info, TCPI_DATA_SEGS_IN)[0])


def test_a_response_arrives_in_one_packet(
    portal: tuple[subprocess.Popen[bytes], int], committed: Engine, vault: PinVault, shop: World
) -> None:
    """gunicorn sends a response's head and body with a send each; with TCP_NODELAY that was two packets
    per heartbeat reply (and per page)."""
    _, port = portal
    _, cookie = logged_in_cookie(committed, vault, shop)
    browser = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Cookie": f"hotspot_portal={cookie}", "X-CSRF-Token": "csrf-1", "Content-Length": "0"}
    pages = [("POST", "/heartbeat", 200), ("GET", "/status", 200), ("GET", "/", 303), ("GET", "/static/portal.js", 200)]
    for method, path, status in pages:
        if browser.sock is None:
            browser.connect()
        before = data_segments_received(browser.sock)
        browser.request(method, path, headers=headers if method == "POST" else {"Cookie": headers["Cookie"]})
        response = browser.getresponse()
        assert response.status == status and response.read()
        assert data_segments_received(browser.sock) - before == 1, f"{method} {path} came in several packets"
    browser.close()


def timed_get(port: int) -> float:
    """Seconds a GET / takes on a new connection."""
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/")
    assert connection.getresponse().status == 200
    connection.close()
    return time.monotonic() - started


ONE_THREAD = ["--threads", "1"]  # the worst case: one guest's stall would hold up all the others


@pytest.mark.parametrize(("workers", "threads"), [(1, ONE_THREAD)])
def test_a_connection_that_sends_nothing_holds_up_no_one(portal: tuple[subprocess.Popen[bytes], int]) -> None:
    """A browser opens connections ahead of need (preconnect); gthread waited up to 5 s for their first
    bytes in the worker's only request thread."""
    _, port = portal
    timed_get(port)
    with socket.create_connection(("127.0.0.1", port)):
        time.sleep(0.2)
        assert timed_get(port) < 1


@pytest.mark.parametrize(("workers", "threads"), [(1, ONE_THREAD)])
def test_a_request_that_stops_halfway_is_cut_off_and_the_others_go_on(
    portal: tuple[subprocess.Popen[bytes], int],
) -> None:
    """A phone that leaves the Wi-Fi in the middle of a request held a request thread for good (with one,
    every other guest of the worker waited)."""
    server, port = portal
    with socket.create_connection(("127.0.0.1", port)) as stalled:
        stalled.sendall(b"POST /heartbeat HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and nothing more
        time.sleep(0.2)
        assert timed_get(port) < REQUEST_TIMEOUT_S + 1
        stalled.settimeout(5)
        assert stalled.recv(100) == b"", "the stalled connection was not closed"
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=30)
    assert server.stderr is not None
    log = server.stderr.read().decode()
    assert f"closed a connection whose request stalled for {REQUEST_TIMEOUT_S} s" in log and "Traceback" not in log


@pytest.mark.parametrize("workers", [1])
def test_with_the_default_two_threads_a_stalled_request_holds_up_no_one(
    portal: tuple[subprocess.Popen[bytes], int],
) -> None:
    _, port = portal
    with socket.create_connection(("127.0.0.1", port)) as stalled:
        stalled.sendall(b"POST /heartbeat HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        time.sleep(0.2)
        assert timed_get(port) < 1


@pytest.mark.parametrize("open_files", ["1024:2048"])
def test_an_open_file_limit_too_low_for_the_guests_is_raised_as_far_as_it_goes_and_said(
    portal: tuple[subprocess.Popen[bytes], int],
) -> None:
    server, _ = portal
    workers = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    for pid in workers:
        limits = Path(f"/proc/{pid}/limits").read_text()
        assert next(line.split()[3] for line in limits.splitlines() if line.startswith("Max open files")) == "2048"
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=30)
    assert server.stderr is not None
    assert "the open-file limit (2048) leaves room for 1948 connections per worker" in server.stderr.read().decode()
