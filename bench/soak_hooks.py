"""rlm_python3 modules for bench/radius_soak.py, copied into the soak's radiusd config dir.

`authorize`/`accounting`/`instantiate`/`detach` wrap rlm_hotspot's hooks and, with SOAK_TRACEMALLOC_EVERY=N
in radiusd's environment, take a tracemalloc snapshot every N hook calls: the first is the baseline (after
warm-up), each later one is compared with it and the top growth by line is written to
SOAK_TRACEMALLOC_OUT — Python-side growth of ours shows there, rlm_python3's C-side growth does not.
`trivial_authorize`/`trivial_accounting` are the A/B: a hook that takes the attributes and returns a tuple.
"""

from __future__ import annotations

import os
import tracemalloc
from typing import Any

import radiusd

from rlm_hotspot.radius import hooks

EVERY = int(os.environ.get("SOAK_TRACEMALLOC_EVERY", "0"))
OUT = os.environ.get("SOAK_TRACEMALLOC_OUT", "")
_calls = 0
_baseline: tracemalloc.Snapshot | None = None


def instantiate(config: object) -> int:
    if EVERY:
        tracemalloc.start(1)
    return hooks.instantiate(config)


def _count() -> None:
    global _calls, _baseline  # noqa: PLW0603 - one radiusd process, one count
    _calls += 1
    if not EVERY or _calls % EVERY:
        return
    snapshot = tracemalloc.take_snapshot().filter_traces((tracemalloc.Filter(False, tracemalloc.__file__),))
    if _baseline is None:
        _baseline = snapshot
        return
    lines = [f"== after {_calls:,} hook calls: traced {tracemalloc.get_traced_memory()[0]:,} bytes"]
    lines += [str(stat) for stat in snapshot.compare_to(_baseline, "lineno")[:25]]
    with open(OUT, "a") as out:
        out.write("\n".join(lines) + "\n")


def authorize(lists: dict[str, Any]) -> object:
    _count()
    return hooks.authorize(lists)


def accounting(lists: dict[str, Any]) -> object:
    _count()
    return hooks.accounting(lists)


def detach(config: object) -> int:
    return hooks.detach(config)


def trivial_authorize(_: object) -> tuple[int, tuple[tuple[str, str], ...], tuple[()]]:
    return radiusd.RLM_MODULE_OK, (("Reply-Message", "soak"),), ()


def trivial_accounting(_: object) -> int:
    return int(radiusd.RLM_MODULE_OK)
