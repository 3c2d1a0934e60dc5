"""The `none` gate: no firewall at all (demos, or a network that lets everyone through anyway)."""

from __future__ import annotations

from collections.abc import Mapping

from rlm_hotspot.nas.gates.base import Options


class NoGate:
    """Nothing blocks anyone, so every client counts as let through and open/close do nothing."""

    def __init__(self, options: Mapping[str, str]) -> None:
        Options("none", options, known=())

    def open(self, ip: str, mac: str | None, seconds: int) -> None:
        """Nothing to open."""

    def close(self, ip: str, mac: str | None) -> None:
        """Nothing to close."""

    def is_open(self, ip: str, mac: str | None) -> bool:
        return True
