"""Benchmark: what an fdatasync per detail entry would cost on this disk (docs/radius.md, durability).

radiusd's detail module (3.2.1) writes each Accounting-Request's entry and answers without syncing it. This
appends entries of a detail entry's size to a file in `--dir` (put it on the spool's filesystem), without and
then with an fdatasync after each, and prints the latency per entry.

    .venv/bin/python bench/detail_fsync_cost.py --dir /var/log/freeradius/radacct
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

ENTRY = b"Mon Dec  7 12:00:00 2026\n" + b"\tAcct-Status-Type = Interim-Update\n" * 7 + b"\tTimestamp = 1796644800\n\n"


def append_latencies(path: str, count: int, *, sync: bool) -> list[float]:
    """Seconds per appended entry, sorted."""
    latencies = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC, 0o600)
    try:
        for _ in range(count):
            started = time.perf_counter()
            os.write(fd, ENTRY)
            if sync:
                os.fdatasync(fd)
            latencies.append(time.perf_counter() - started)
    finally:
        os.close(fd)
    return sorted(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=tempfile.gettempdir())
    parser.add_argument("--synced", type=int, default=300, help="entries appended with an fdatasync each")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        path = os.path.join(scratch, "buffer.detail")
        for sync, count in ((False, 10 * args.synced), (True, args.synced)):
            latencies = append_latencies(path, count, sync=sync)
            print(
                f"fdatasync={sync}: {count} entries of {len(ENTRY)} B, per entry p50 "
                f"{latencies[count // 2] * 1e3:.3f} ms, p99 {latencies[int(count * 0.99)] * 1e3:.3f} ms, "
                f"mean {sum(latencies) / count * 1e3:.3f} ms"
            )


if __name__ == "__main__":
    main()
