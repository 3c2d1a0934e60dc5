"""Benchmark: `hotspotctl cards generate --count N` with encrypted PINs, on a private PostgreSQL.

Prints wall time and cards/s. Usage: .venv/bin/python bench/cards_generate.py [--count 1000000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from devtools.cluster import temporary_cluster


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--pin-mode", choices=["encrypted", "hashed"], default="encrypted")
    args = parser.parse_args()
    with temporary_cluster("bench-cards-", "bench") as (cluster, root):
        env = {
            **os.environ,
            "HOTSPOT_CONFIG": os.devnull,
            "HOTSPOT_DATABASE_URL": cluster.url("bench"),
            "HOTSPOT_PIN_KEY_FILE": str(root / "pin.keys"),
            "HOTSPOT_PIN_MODE": args.pin_mode,
        }
        ctl = [str(Path(sys.executable).with_name("hotspotctl"))]

        def run(*cmd: str) -> None:
            subprocess.run(ctl + list(cmd), env=env, check=True, capture_output=True, text=True)

        run("db", "init")
        run("tariff", "add", "bench", "--per-hour", "1.00")
        run("hotspot", "add", "bench", "--timezone", "UTC", "--tariff", "bench")
        command = ["cards", "generate", "--count", str(args.count), "--value", "5.00", "--hotspot", "bench"]
        started = time.perf_counter()
        run(*command)
        elapsed = time.perf_counter() - started
        count = cluster.psql("bench", "SELECT count(*) FROM cards").strip()
        print(f"hotspotctl {' '.join(command)}  (PINs {args.pin_mode})")
        print(f"cards in database: {count}")
        print(f"wall time: {elapsed:.1f} s  ({args.count / elapsed:,.0f} cards/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
