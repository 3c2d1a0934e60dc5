"""The opennds gate for real: openNDS 9.10 in the gateway namespace, the portal as its FAS (level 1).

Follows ../shared/notes/gateway-lab.md §4 to §6 exactly: pre-created ip filter chains, a DHCP lease from
dnsmasq for the guest (busybox udhcpc), openNDS in a private mount namespace over an overlay of /etc and
private /run and /tmp, a default route with a primed ARP entry, and ndsctl reached through nsenter.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import pytest
from sqlalchemy import Engine, text

from rlm_hotspot.nas.gates import make_gate
from rlm_hotspot.nas.gates.opennds import OpenNdsGate
from rlm_hotspot.pins import PinVault
from tests.gates.labdb import HEARTBEAT_TIMEOUT_S, LabCard, only_session, run_worker_cycle, standalone_card
from tests.gates.labportal import Guest, start_portal
from tests.gates.netlab import GATEWAY_LAN, NET_IP, NetLab, require_lab

PORTAL_URL = f"http://{NET_IP}:5000/"
GATEWAY_ADDRESS = f"{GATEWAY_LAN}:2050"
HELLO = "hello from the internet\n"
PRECREATED_CHAINS = """
table ip filter {
  chain INPUT   { comment "priority -100 (pre-created)"; type filter hook input priority 0; policy accept; }
  chain FORWARD { comment "priority -100 (pre-created)"; type filter hook forward priority 0; policy accept; }
}
"""
OPENNDS_CONF = """gatewayinterface veth-gw-cl
gatewayname lab
gatewayport 2050
checkinterval 10
preauthidletimeout 30
authidletimeout 120
sessiontimeout 60
login_option_enabled 0
fasremoteip {fas_ip}
fasport 5000
faspath /
faskey {faskey}
fas_secure_enabled 1
FirewallRuleSet authenticated-users {{
}}
FirewallRuleSet preauthenticated-users {{
}}
FirewallRuleSet users-to-router {{
    FirewallRule allow udp port 53
    FirewallRule allow tcp port 53
    FirewallRule allow udp port 67
}}
"""
UDHCPC_SCRIPT = """#!/bin/sh
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/$subnet" dev "$interface"
    ip route replace default via "${router%% *}" dev "$interface"
    ;;
esac
exit 0
"""


class OpenNdsLab(NamedTuple):
    lab: NetLab
    guest: Guest
    gate: OpenNdsGate
    client_ip: str
    client_mac: str


def start_opennds(lab: NetLab, workdir: Path, faskey: str) -> int:
    """openNDS in gw inside a private mount namespace (it writes to /etc, /run and /tmp); returns its pid.

    Its /tmp is <workdir>/ndstmp, where dnsmasq keeps the leases: openNDS serves only clients with a lease.
    """
    (workdir / "opennds.conf").write_text(OPENNDS_CONF.format(fas_ip=NET_IP, faskey=faskey))
    script = (
        f"mount -t tmpfs tmpfs {workdir}/ovl && mkdir {workdir}/ovl/upper {workdir}/ovl/work && "
        f"mount -t overlay overlay -o lowerdir=/etc,upperdir={workdir}/ovl/upper,workdir={workdir}/ovl/work /etc && "
        f"cp {workdir}/opennds.conf /etc/opennds/ && "
        "echo 'nameserver 127.0.0.1' > /etc/resolv.conf && "
        "mount -t tmpfs tmpfs /run && mkdir -p /run/tmpfiles.d && "
        f"mount --bind {workdir}/ndstmp /tmp && "
        "exec /usr/bin/opennds -f -d 3 -c /etc/opennds/opennds.conf"
    )
    (workdir / "ovl").mkdir()
    process = lab.spawn("gw", ["unshare", "-m", "--propagation", "private", "sh", "-c", script], "opennds")
    deadline = time.monotonic() + 20
    while "openNDS is now running" not in lab.log("opennds"):
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.skip(f"openNDS did not start in this kernel/namespace; it said:\n{lab.log('opennds')[-2000:]}")
        time.sleep(0.2)
    return process.pid


@pytest.fixture
def card(committed: Engine, vault: PinVault) -> LabCard:
    return standalone_card(committed, vault, PORTAL_URL)


@pytest.fixture
def nds(tmp_path: Path, card: LabCard, database_url: str, key_file: Path) -> Iterator[OpenNdsLab]:
    require_lab("ss", "python3", "opennds", "ndsctl", "dnsmasq", "busybox", "iptables", "nsenter", "unshare")
    tmp_path.chmod(0o755)
    lab = NetLab(tmp_path)
    faskey = secrets.token_hex(16)
    try:
        lab.build(client_address=False, gateway_default_route=True)
        lab.nft("gw", PRECREATED_CHAINS)
        site = tmp_path / "site"
        site.mkdir()
        (site / "hello.txt").write_text(HELLO)
        lab.spawn("net", ["python3", "-m", "http.server", "--bind", NET_IP, "--directory", str(site), "80"], "web")
        lab.wait_for_listener("net", 80, "web")
        leases = tmp_path / "ndstmp" / "dhcp.leases"
        (tmp_path / "ndstmp").mkdir()
        lab.spawn(
            "gw",
            [
                "dnsmasq", "-k", "--user=root", "--conf-file=/dev/null", "--bind-interfaces", "--interface=veth-gw-cl",
                "--dhcp-range=10.77.0.100,10.77.0.199,255.255.255.0,1h", "--dhcp-option=option:router,10.77.0.1",
                f"--dhcp-leasefile={leases}", "--no-resolv", "--no-hosts", f"--address=/#/{NET_IP}",
            ],
            "dnsmasq",
        )  # fmt: skip
        lab.wait_for_listener("gw", 53, "dnsmasq")
        script = tmp_path / "udhcpc.script"
        script.write_text(UDHCPC_SCRIPT)
        script.chmod(0o755)
        lab.run("cl", "busybox", "udhcpc", "-i", "veth-cl", "-f", "-q", "-n", "-t", "5", "-s", str(script), timeout=30)
        client = json.loads(lab.run("cl", "ip", "-j", "-4", "addr", "show", "veth-cl").stdout)[0]
        client_ip = client["addr_info"][0]["local"]
        lab.run("gw", "curl", "-s", "-o", "/dev/null", f"http://{NET_IP}/hello.txt")  # primes ARP for the route
        pid = start_opennds(lab, tmp_path, faskey)
        options = {"ndsctl": f"nsenter -t {pid} -m -n ndsctl", "faskey": faskey, "gateway_address": GATEWAY_ADDRESS}
        start_portal(
            lab, "net", PORTAL_URL, database_url=database_url, key_file=key_file, gate="opennds", gate_options=options
        )
        gate = make_gate("opennds", options)
        yield OpenNdsLab(lab, Guest(lab), gate, client_ip, lab.mac("cl", "veth-cl"))  # type: ignore[arg-type]
        assert lab.guard_drops() == {"cl": 0, "gw": 0, "net": 0}, "a packet tried to leave the lab"
    finally:
        lab.close()


def reaches_internet(guest: Guest) -> bool:
    answer = guest.get(f"http://{NET_IP}/hello.txt")
    return (answer.status, answer.body) == (200, HELLO)


def test_fas_login_then_cut_off_by_the_worker_and_by_ndsctl(nds: OpenNdsLab, card: LabCard, committed: Engine) -> None:
    """Level 1: the portal learns IP and MAC from `fas`, and the guest's browser takes openNDS the token."""
    guest, gate = nds.guest, nds.gate
    to_fas = guest.get(f"http://{NET_IP}/hello.txt").location
    assert to_fas.startswith(f"{PORTAL_URL}?fas="), to_fas
    assert not reaches_internet(guest)

    refused = guest.log_in(to_fas, card.number, "WRONGPIN9")
    assert refused.status == 200 and "Wrong PIN" in refused.body
    logged_in = guest.log_in(to_fas, card.number, card.pin)
    assert logged_in.status == 303 and logged_in.location.startswith(f"http://{GATEWAY_ADDRESS}/opennds_auth/?tok=")
    assert not gate.is_open(nds.client_ip, nds.client_mac)  # the portal ran no ndsctl: openNDS checks the token
    authenticated = guest.get(logged_in.location)
    assert (authenticated.status, authenticated.location) == (307, f"{PORTAL_URL}status"), authenticated
    status_page = guest.get(authenticated.location).body
    assert "You are online" in status_page and f'href="http://{NET_IP}/hello.txt"' in status_page  # openNDS's originurl
    assert reaches_internet(guest)
    assert gate.is_open(nds.client_ip, nds.client_mac)
    session = only_session(committed)
    assert (session.framed_ip, session.calling_station_id) == (nds.client_ip, nds.client_mac)

    run_worker_cycle(committed, gate, datetime.now(UTC) + timedelta(seconds=HEARTBEAT_TIMEOUT_S + 1))
    assert only_session(committed)[:2] == ("closed", "Heartbeat-Timeout")
    assert not gate.is_open(nds.client_ip, nds.client_mac)  # the worker's ndsctl deauth, by the MAC from `fas`
    assert guest.get(f"http://{NET_IP}/hello.txt").location.startswith(f"{PORTAL_URL}?fas=")

    gate.open(nds.client_ip, None, 120)  # ndsctl auth: the client is listed again since its last redirect
    assert reaches_internet(guest)
    gate.close(nds.client_ip, None)
    assert not reaches_internet(guest)
    gate.close(nds.client_ip, None)  # already cut off: fine


def test_a_fas_link_naming_another_client_is_refused(nds: OpenNdsLab, card: LabCard, committed: Engine) -> None:
    """A guest who rewrites `fas` to name another client (here: another IP) gets no session for it."""
    to_fas = nds.guest.get(f"http://{NET_IP}/hello.txt").location
    fas = base64.b64decode(to_fas.split("?fas=", 1)[1] + "==").decode()
    forged = fas.replace(f"clientip={nds.client_ip}", "clientip=10.77.0.99")
    answer = nds.guest.get(f"{PORTAL_URL}?fas={base64.b64encode(forged.encode()).decode()}")
    assert answer.status == 400 and "Please open any web page again" in answer.body
    with committed.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM sessions")).scalar_one() == 0
