"""The `nftables` gate: the client's address in a named set with a timeout (deploy/nftables/captive.nft).

The ruleset redirects port 80 of every client not in the set to the portal and forwards only clients in
it; adding an element opens the gate at once and removing it cuts running downloads at once. Every
element carries a timeout, so a gate closes by itself even if the portal and the worker both die.

Options: ``prefix`` (e.g. ``ip netns exec gw``), ``nft`` (the program, default ``nft``), ``family`` and
``table`` (default ``inet captive``), ``set`` (default ``allowed_clients``), ``bind_mac`` (``yes``: the
element is the pair IP . MAC in ``mac_set``, default ``allowed_pairs``, so a neighbour that copies the
IP alone gets nowhere), ``timeout`` (seconds per nft call).
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping

from rlm_hotspot.nas.gates.base import GateError, Options, client_ip, client_mac, positive_seconds, run_command

_MISSING = "No such file or directory"  # nft's words for "no such element"


class NftablesGate:
    """Opens and closes the gate by editing one nftables set through the `nft` program."""

    def __init__(self, options: Mapping[str, str]) -> None:
        opts = Options(
            "nftables", options, known=("prefix", "nft", "family", "table", "set", "mac_set", "bind_mac", "timeout")
        )
        self._nft = [*opts.words("prefix"), *opts.words("nft", "nft")]
        self._table = f"{opts.text('family', 'inet')} {opts.text('table', 'captive')}"
        self._bind_mac = opts.flag("bind_mac")
        self._set = opts.text("mac_set", "allowed_pairs") if self._bind_mac else opts.text("set", "allowed_clients")
        self._timeout = opts.timeout()

    def open(self, ip: str, mac: str | None, seconds: int) -> None:
        """Add the element, replacing an existing one so that its timeout is renewed (one atomic batch)."""
        key = self._element(ip, mac)
        target = f"element {self._table} {self._set}"
        script = (
            f"add {target} {{ {key} }}\n"
            f"delete {target} {{ {key} }}\n"
            f"add {target} {{ {key} timeout {positive_seconds(seconds)}s }}\n"
        )
        run_command([*self._nft, "-f", "-"], stdin=script, timeout=self._timeout)

    def close(self, ip: str, mac: str | None) -> None:
        done = self._element_command("delete", ip, mac)
        if done.returncode != 0 and _MISSING not in done.stderr:
            raise GateError(f"nftables gate: could not remove {ip} from {self._set}: {done.stderr.strip()}")

    def is_open(self, ip: str, mac: str | None) -> bool:
        done = self._element_command("get", ip, mac)
        if done.returncode != 0 and _MISSING not in done.stderr:
            raise GateError(f"nftables gate: could not look up {ip} in {self._set}: {done.stderr.strip()}")
        return done.returncode == 0

    def _element_command(self, verb: str, ip: str, mac: str | None) -> subprocess.CompletedProcess[str]:
        argv = [*self._nft, verb, "element", *self._table.split(), self._set, f"{{ {self._element(ip, mac)} }}"]
        return run_command(argv, timeout=self._timeout, ok_codes=(0, 1))

    def _element(self, ip: str, mac: str | None) -> str:
        """The set element in nft syntax, from validated parts only (nothing else reaches nft)."""
        address = client_ip(ip)
        if not self._bind_mac:
            return address
        hardware = client_mac(mac)
        if hardware is None:
            raise GateError(f"nftables gate binds IP and MAC, but no MAC is known for {address}")
        return f"{address} . {hardware}"
