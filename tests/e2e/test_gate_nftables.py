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
from sqlalchemy import Engine

from portal.gates import make_gate
from portal.gates.nftables import NftablesGate
from rlm_hotspot.pins import PinVault
from rlm_hotspot.services import sessions
from rlm_hotspot.services.tariff_cache import TariffCache
from tests.gates import lab_portal
from tests.gates.labdb import HEARTBEAT_TIMEOUT_S, LabCard, only_session, run_worker_cycle, standalone_card, transaction
from tests.gates.netlab import CLIENT_IP, GATEWAY_LAN, NET_IP, NetLab, require_lab

pytestmark = [pytest.mark.e2e, pytest.mark.db]

RULESET_LOADER = Path(__file__).resolve().parents[2] / "deploy" / "nftables" / "load-captive"
PORTAL = f"{GATEWAY_LAN}:8080"
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
    return standalone_card(committed, vault, f"http://{PORTAL}/")


@pytest.fixture
def gate(lab: NetLab) -> NftablesGate:
    return make_gate("nftables", {"prefix": " ".join(lab.exec_prefix("gw"))})  # type: ignore[return-value]


@pytest.fixture
def portal(lab: NetLab, card: LabCard, database_url: str, key_file: Path) -> None:
    """The portal inside gw (so its gate needs no prefix), where the guests' port 80 is redirected."""
    lab_portal.start(
        lab,
        "gw",
        "0.0.0.0:8080",
        PORTAL,
        "nftables",
        database_url=database_url,
        key_file=str(key_file),
        hotspot_id=str(card.hotspot_id),
    )


def fetch(lab: NetLab, url: str, *options: str) -> tuple[str, str]:
    """(status code, body) as the guest sees it."""
    body, _, code = lab.curl(*options, url).stdout.rpartition("\n")
    return code, body


def reaches_internet(lab: NetLab) -> bool:
    return fetch(lab, f"http://{NET_IP}/hello.txt") == ("200", HELLO)


def log_in(lab: NetLab, number: str, pin: str) -> tuple[str, str]:
    return fetch(lab, f"http://{PORTAL}/login", "--data-urlencode", f"card={number}", "--data-urlencode", f"pin={pin}")


def assert_redirected_to_portal(lab: NetLab) -> None:
    code, _ = fetch(lab, f"http://{NET_IP}/hello.txt")
    assert code == "302"
    location = lab.curl("-o", "/dev/null", "-w", "%{redirect_url}", f"http://{NET_IP}/hello.txt").stdout
    assert location.startswith(f"http://{PORTAL}/login?orig=http"), location


def bytes_received(lab: NetLab) -> int:
    """What the guest's kernel has received on its download connection (ss shows it per TCP socket)."""
    shown = lab.run("cl", "ss", "-tinH", "dst", NET_IP).stdout
    return sum(int(match) for match in re.findall(r"bytes_received:(\d+)", shown))


def wait_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.1)


def test_login_opens_the_gate_and_stopped_heartbeats_close_it(lab, gate, card, portal, committed) -> None:  # type: ignore[no-untyped-def]
    number, pin = card.number, card.pin
    assert_redirected_to_portal(lab)
    code, body = log_in(lab, number, "WRONGPIN9")
    assert code == "403" and "refused" in body
    assert not gate.is_open(CLIENT_IP, None)

    code, body = log_in(lab, number, pin)
    assert code == "200", body
    assert gate.is_open(CLIENT_IP, None)
    assert reaches_internet(lab)

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
    assert_redirected_to_portal(lab)


def test_balance_running_out_closes_the_gate(lab, gate, card, portal, committed) -> None:  # type: ignore[no-untyped-def]
    number, pin = card.number, card.pin
    assert log_in(lab, number, pin)[0] == "200"
    assert reaches_internet(lab)

    later = datetime.now(UTC) + timedelta(hours=2)  # 1.00 at 1.20/h lasts 50 minutes
    with transaction(committed) as session:
        status = sessions.heartbeat(session, TariffCache(), only_session(committed).auth_token, later)
    assert status.balance <= 0 and status.seconds_remaining == 0
    run_worker_cycle(committed, gate, later)

    assert only_session(committed)[:2] == ("closed", "Balance-Exhausted")
    assert not gate.is_open(CLIENT_IP, None)
    assert_redirected_to_portal(lab)


def test_gate_expires_by_itself_and_can_bind_the_mac(lab: NetLab, gate: NftablesGate) -> None:
    gate.open(CLIENT_IP, None, 2)
    assert reaches_internet(lab)
    time.sleep(2.5)
    assert not gate.is_open(CLIENT_IP, None)
    assert not reaches_internet(lab)  # no portal runs in this test: the redirected port 80 is refused
    gate.close(CLIENT_IP, None)  # closing a closed gate is fine

    bound = make_gate("nftables", {"prefix": " ".join(lab.exec_prefix("gw")), "bind_mac": "yes"})
    client_mac = lab.mac("cl", "veth-cl")
    bound.open(CLIENT_IP, "02:00:00:00:99:99", 60)  # the IP with someone else's MAC: still closed
    assert not reaches_internet(lab)
    bound.open(CLIENT_IP, client_mac.upper().replace(":", "-"), 60)
    assert bound.is_open(CLIENT_IP, client_mac) and not gate.is_open(CLIENT_IP, None)
    assert reaches_internet(lab)
    bound.close(CLIENT_IP, client_mac)
    assert not reaches_internet(lab)
