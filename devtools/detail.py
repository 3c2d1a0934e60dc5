"""Accounting entries as radiusd's `detail` module writes them, for tests and benchmarks that fill a spool
without a radiusd: the header line (radiusd's local time), one tab-indented `Name = value` line per attribute
in the order given, the entry's `Timestamp`, and the empty line that ends it."""

from __future__ import annotations

import time
from collections.abc import Iterable


def detail_entry(at: int, attributes: Iterable[tuple[str, object]]) -> bytes:
    """One entry received at unix time `at`; each value is written as given (quote a string: `'"S1"'`)."""
    lines = "".join(f"\t{name} = {value}\n" for name, value in attributes)
    return f"{time.strftime('%a %b %d %H:%M:%S %Y', time.localtime(at))}\n{lines}\tTimestamp = {at}\n\n".encode()
