"""Gate drivers for standalone hotspots: the portal lets a logged-in client through the firewall.

``make_gate(name, options)`` builds the driver a hotspot is configured with: ``nftables``, ``opennds``,
``command`` or ``none``. Every failure is a :class:`GateError`; what the portal does about one is in
docs/portal-gates.md (in short: a login whose gate did not open is rolled back, never left billing).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from rlm_hotspot.nas.gates.base import Gate, GateError
from rlm_hotspot.nas.gates.command import CommandGate
from rlm_hotspot.nas.gates.nftables import NftablesGate
from rlm_hotspot.nas.gates.none import NoGate
from rlm_hotspot.nas.gates.opennds import FasRequest, FasRequestError, OpenNdsGate

DRIVERS: dict[str, Callable[[Mapping[str, str]], Gate]] = {
    "nftables": NftablesGate,
    "opennds": OpenNdsGate,
    "command": CommandGate,
    "none": NoGate,
}

__all__ = ["DRIVERS", "FasRequest", "FasRequestError", "Gate", "GateError", "OpenNdsGate", "make_gate"]


def make_gate(name: str, options: Mapping[str, str]) -> Gate:
    """The configured driver; an unknown name or option fails here, at startup, with a clear message."""
    driver = DRIVERS.get(name)
    if driver is None:
        raise GateError(f"unknown gate driver {name!r}; choose one of {', '.join(DRIVERS)}")
    return driver(options)
