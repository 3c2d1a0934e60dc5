"""The nftables gate for real: guest (cl) — gateway with the portal (gw) — "Internet" (net), in namespaces.

The guest's port 80 lands on the portal; a login opens the gate and the guest reaches `net`; the real
worker step (hotspotctl worker's cycle) closes the gate when heartbeats stop or the money runs out, and
a running download stalls at once. See ../shared/notes/gateway-lab.md for the recipe.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from rlm_hotspot.nas.gates import make_gate
from rlm_hotspot.nas.gates.nftables import NftablesGate
from rlm_hotspot.pins import PinVault
from rlm_hotspot.services import sessions
from rlm_hotspot.services.tariff_cache import TariffCache
from tests.gates.labdb import HEARTBEAT_TIMEOUT_S, LabCard, only_session, run_worker_cycle, standalone_card, transaction
from tests.gates.labportal import Guest, start_portal
from tests.gates.netlab import CLIENT_IP, GATEWAY_LAN, NET_IP, NetLab, require_lab

RULESET_LOADER = Path(__file__).resolve().parents[2] / "deploy" / "nftables" / "load-captive"
PORTAL_URL = f"http://{GATEWAY_LAN}:8080/"
BIG_FILE_BYTES = 64 * 2**20
BIG_URL = f"http://{NET_IP}/big.bin"
HELLO = "hello from the internet\n"


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[NetLab]:
    require_lab("ss", "python3")
    lab = NetLab(tmp_path)
    try:
        lab.build()
        lab.run("gw", str(RULESET_LOADER), "veth-gw-cl", "veth-gw-net", "10.77.0.0/24", GATEWAY_LAN, "8080")
        site = tmp_path / "site"
        site.mkdir()
        (site / "hello.txt").write_text(HELLO)
        with (site / "big.bin").open("wb") as big:
            big.truncate(BIG_FILE_BYTES)
        lab.spawn("net", ["python3", "-m", "http.server", "--bind", NET_IP, "--directory", str(site), "80"], "web")
        lab.wait_for_listener("net", 80, "web")
        yield lab
        assert lab.guard_drops() == {"cl": 0, "gw": 0, "net": 0}, "a packet tried to leave the lab"
    finally:
        lab.close()


@pytest.fixture
def card(committed: Engine, vault: PinVault) -> LabCard:
    return standalone_card(committed, vault, PORTAL_URL)


@pytest.fixture
def gate(lab: NetLab) -> NftablesGate:
    return make_gate("nftables", {"prefix": " ".join(lab.exec_prefix("gw"))})  # type: ignore[return-value]


@pytest.fixture
def guest(lab: NetLab, card: LabCard, database_url: str, key_file: Path) -> Guest:
    """The real portal inside gw (so its gate needs no prefix), where the guests' port 80 is redirected."""
    start_portal(lab, "gw", PORTAL_URL, database_url=database_url, key_file=key_file, gate="nftables")
    return Guest(lab)


def reaches_internet(guest: Guest) -> bool:
    answer = guest.get(f"http://{NET_IP}/hello.txt")
    return (answer.status, answer.body) == (200, HELLO)


def assert_redirected_to_portal(guest: Guest) -> None:
    answer = guest.get(f"http://{NET_IP}/hello.txt")
    assert (answer.status, answer.location) == (302, f"{PORTAL_URL}?url=http%3A%2F%2F{NET_IP}%2Fhello.txt"), answer


def bytes_received(lab: NetLab) -> int:
    """What the guest's kernel has received on its download connection (ss shows it per TCP socket)."""
    shown = lab.run("cl", "ss", "-tinH", "dst", NET_IP).stdout
    return sum(int(match) for match in re.findall(r"bytes_received:(\d+)", shown))


def wait_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.1)


def test_login_opens_the_gate_and_stopped_heartbeats_close_it(lab, gate, card, guest, committed) -> None:  # type: ignore[no-untyped-def]
    assert_redirected_to_portal(guest)
    refused = guest.log_in(PORTAL_URL, card.number, "WRONGPIN9")
    assert refused.status == 200 and "Wrong PIN" in refused.body
    assert not gate.is_open(CLIENT_IP, None)

    logged_in = guest.log_in(PORTAL_URL, card.number, card.pin)
    assert (logged_in.status, logged_in.location) == (303, f"{PORTAL_URL}status"), logged_in
    assert "You are online" in guest.get(logged_in.location).body
    assert gate.is_open(CLIENT_IP, None)
    assert reaches_internet(guest)

    download = lab.spawn("cl", ["curl", "-s", "-o", "/dev/null", "--limit-rate", "4M", "-m", "20", BIG_URL], "download")
    wait_until(lambda: bytes_received(lab) > 0)
    run_worker_cycle(committed, gate, datetime.now(UTC) + timedelta(seconds=HEARTBEAT_TIMEOUT_S + 1))  # silence
    time.sleep(0.5)
    received_after_cut = bytes_received(lab)
    time.sleep(1.5)
    assert bytes_received(lab) == received_after_cut < BIG_FILE_BYTES, "the running download went on"
    assert download.poll() is None  # stalled, not finished

    assert not gate.is_open(CLIENT_IP, None)
    assert only_session(committed)[:2] == ("closed", "Heartbeat-Timeout")
    with committed.connect() as conn:
        billed, gate_open = conn.execute(text("SELECT seconds, stopped_at - started_at FROM sessions")).one()
    assert billed == int(gate_open.total_seconds()) > HEARTBEAT_TIMEOUT_S  # to the cut, not to the last page view
    assert_redirected_to_portal(guest)
    assert "Your session has ended" in guest.get(f"{PORTAL_URL}status").body  # the portal knows it too


def test_balance_running_out_closes_the_gate(lab, gate, card, guest, committed) -> None:  # type: ignore[no-untyped-def]
    assert guest.log_in(PORTAL_URL, card.number, card.pin).status == 303
    assert reaches_internet(guest)

    later = datetime.now(UTC) + timedelta(hours=2)  # 1.00 at 1.20/h lasts 50 minutes
    with transaction(committed) as session:
        status = sessions.post_heartbeat(session, TariffCache(), only_session(committed).auth_token, later)
    assert status.balance <= 0 and status.seconds_remaining == 0
    run_worker_cycle(committed, gate, later)

    assert only_session(committed)[:2] == ("closed", "Balance-Exhausted")
    assert not gate.is_open(CLIENT_IP, None)
    assert_redirected_to_portal(guest)


def test_gate_expires_by_itself_and_can_bind_the_mac(lab: NetLab, gate: NftablesGate) -> None:
    guest = Guest(lab)
    gate.open(CLIENT_IP, None, 2)
    assert reaches_internet(guest)
    time.sleep(2.5)
    assert not gate.is_open(CLIENT_IP, None)
    assert not reaches_internet(guest)  # no portal runs in this test: the redirected port 80 is refused
    gate.close(CLIENT_IP, None)  # closing a closed gate is fine

    bound = make_gate("nftables", {"prefix": " ".join(lab.exec_prefix("gw")), "bind_mac": "yes"})
    client_mac = lab.mac("cl", "veth-cl")
    bound.open(CLIENT_IP, "02:00:00:00:99:99", 60)  # the IP with someone else's MAC: still closed
    assert not reaches_internet(guest)
    bound.open(CLIENT_IP, client_mac.upper().replace(":", "-"), 60)
    assert bound.is_open(CLIENT_IP, client_mac) and not gate.is_open(CLIENT_IP, None)
    assert reaches_internet(guest)
    bound.close(CLIENT_IP, client_mac)
    assert not reaches_internet(guest)
