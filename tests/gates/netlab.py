"""A throw-away network lab in namespaces: cl (guest) — gw (gateway) — net ("Internet").

Follows ../shared/notes/gateway-lab.md. Names carry the test process's pid, so parallel runs never meet;
nothing links to a host interface; cleanup kills only processes this lab started (and what they left in
its own namespaces), deletes the namespaces and their /etc/netns folders. A guard table in every
namespace drops (and counts) any packet to an address outside the lab; the tests assert it stayed 0.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

ROLES = ("cl", "gw", "net")
GATEWAY_LAN, CLIENT_IP, GATEWAY_WAN, NET_IP = "10.77.0.1", "10.77.0.2", "10.88.0.1", "10.88.0.2"
LABGUARD = """
table inet labguard
delete table inet labguard
table inet labguard {
  set lab4 { type ipv4_addr; flags interval; elements = { 127.0.0.0/8, 10.77.0.0/24, 10.88.0.0/24, 255.255.255.255 }; }
  set lab6 { type ipv6_addr; flags interval; elements = { ::1, fe80::/10, ff00::/8 }; }
  chain guard_out { type filter hook output priority -300; policy accept;
    ip daddr != @lab4 counter drop
    ip6 daddr != @lab6 counter drop
  }
  chain guard_fwd { type filter hook forward priority -300; policy accept;
    ip daddr != @lab4 counter drop
    ip6 daddr != @lab6 counter drop
  }
}
"""
_serial = itertools.count()


def require_lab(*programs: str) -> None:
    """Skip (with the reason) unless we are root, have the programs, and may create a namespace."""
    if os.geteuid() != 0:
        pytest.skip("network-namespace lab needs root")
    missing = [program for program in ("ip", "nft", "curl", *programs) if shutil.which(program) is None]
    if missing:
        pytest.skip(f"network-namespace lab needs {', '.join(missing)} (not installed)")
    probe = f"hsprobe{os.getpid()}"
    done = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"`ip netns add` refused: {done.stderr.strip()}")
    subprocess.run(["ip", "netns", "del", probe], check=False)


class NetLab:
    """The three namespaces, their links and the processes started in them."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        serial = f"{os.getpid()}-{next(_serial)}"
        self.names = {role: f"hs-{role}-{serial}" for role in ROLES}
        self._processes: list[subprocess.Popen[bytes]] = []
        self._created: list[str] = []

    # -- building -------------------------------------------------------------------------------------

    def build(self, *, client_address: bool = True, gateway_default_route: bool = False) -> None:
        """cl — gw — net with veths; the client gets its static address unless it will use DHCP."""
        for role, name in self.names.items():
            subprocess.run(["ip", "netns", "add", name], check=True)
            self._created.append(name)
            etc = Path("/etc/netns") / name
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "resolv.conf").write_text(f"nameserver {GATEWAY_LAN if role == 'cl' else '127.0.0.1'}\n")
            (etc / "hosts").write_text("127.0.0.1 localhost\n")
            self.ip(role, "link", "set", "lo", "up")
            self.nft(role, LABGUARD)
        cl, gw, net = (self.names[role] for role in ROLES)
        subprocess.run(
            ["ip", "link", "add", "veth-gw-cl", "netns", gw, "type", "veth", "peer", "name", "veth-cl", "netns", cl],
            check=True,
        )
        subprocess.run(
            ["ip", "link", "add", "veth-gw-net", "netns", gw, "type", "veth", "peer", "name", "veth-net", "netns", net],
            check=True,
        )
        self.ip("gw", "addr", "add", f"{GATEWAY_LAN}/24", "dev", "veth-gw-cl")
        self.ip("gw", "addr", "add", f"{GATEWAY_WAN}/24", "dev", "veth-gw-net")
        self.ip("net", "addr", "add", f"{NET_IP}/24", "dev", "veth-net")
        for role, link in (("gw", "veth-gw-cl"), ("gw", "veth-gw-net"), ("cl", "veth-cl"), ("net", "veth-net")):
            self.ip(role, "link", "set", link, "up")
        if client_address:
            self.ip("cl", "addr", "add", f"{CLIENT_IP}/24", "dev", "veth-cl")
            self.ip("cl", "route", "add", "default", "via", GATEWAY_LAN)
        self.ip("net", "route", "add", "default", "via", GATEWAY_WAN)
        if gateway_default_route:
            self.ip("gw", "route", "add", "default", "via", NET_IP)
        self.run("gw", "sysctl", "-qw", "net.ipv4.ip_forward=1")
        # Recent kernels let a receive buffer grow to 32 MB: the guest would keep reading buffered data for
        # many seconds after a cut-off. 1 MB keeps "the download stalls at once" observable.
        self.run("cl", "sysctl", "-qw", "net.ipv4.tcp_rmem=4096 131072 1048576")

    def mac(self, role: str, link: str) -> str:
        shown = json.loads(self.run(role, "ip", "-j", "link", "show", link).stdout)
        return str(shown[0]["address"])

    # -- running --------------------------------------------------------------------------------------

    def exec_prefix(self, role: str) -> list[str]:
        return ["ip", "netns", "exec", self.names[role]]

    def run(
        self, role: str, *argv: str, check: bool = True, timeout: float = 20, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*self.exec_prefix(role), *argv], input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{role}: {' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
        return done

    def ip(self, role: str, *argv: str) -> None:
        self.run(role, "ip", *argv)

    def nft(self, role: str, ruleset: str) -> None:
        self.run(role, "nft", "-f", "-", stdin=ruleset)

    def spawn(
        self, role: str, argv: Sequence[str], log_name: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start a program in a namespace (recorded, so cleanup stops it if it still runs)."""
        log = (self.workdir / f"{log_name}.log").open("wb")
        process = subprocess.Popen(
            [*self.exec_prefix(role), *argv],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=Path(__file__).resolve().parents[2],
        )
        self._processes.append(process)
        return process

    def log(self, log_name: str) -> str:
        path = self.workdir / f"{log_name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_for_listener(self, role: str, port: int, log_name: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.run(role, "ss", "-Hltn", f"sport = :{port}").stdout.strip():
                return
            if any(process.poll() is not None for process in self._processes):
                break
            time.sleep(0.1)
        raise AssertionError(f"nothing listens on {role}:{port}; {log_name} said:\n{self.log(log_name)[-3000:]}")

    def curl(self, *argv: str, timeout: float = 5) -> subprocess.CompletedProcess[str]:
        """curl from the guest: prints the body, then a line with the status code (000 = no answer)."""
        return self.run(
            "cl", "curl", "-s", "-m", str(timeout), "-w", "\n%{http_code}", *argv, check=False, timeout=timeout + 5
        )

    # -- checks and cleanup ---------------------------------------------------------------------------

    def guard_drops(self) -> dict[str, int]:
        """Packets the guard table dropped per namespace (anything headed outside the lab)."""
        drops = {}
        for role in ROLES:
            listed = json.loads(self.run(role, "nft", "-j", "list", "table", "inet", "labguard").stdout)
            drops[role] = sum(
                item["counter"]["packets"]
                for entry in listed["nftables"]
                if "rule" in entry
                for item in entry["rule"]["expr"]
                if "counter" in item
            )
        return drops

    def close(self) -> None:
        for process in self._processes:
            if process.poll() is None:
                process.terminate()
        for process in self._processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        for name in self._created:
            # Whatever still runs inside a namespace this lab created was started by this lab's programs.
            pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, check=False)
            for pid in pids.stdout.split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", name], check=False)
            shutil.rmtree(Path("/etc/netns") / name, ignore_errors=True)
