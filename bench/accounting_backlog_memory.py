"""Benchmark: the accounting importer's peak memory on a backlog (issue 19: radiusd answers into its detail
file for the whole of a database outage, ~100 KB/s at 330 packets/s; the importer then finds one large file).

    .venv/bin/python bench/accounting_backlog_memory.py --sessions 2000 --minutes 100

`--sessions` logins wait for their Start. The real `hotspotctl radius import` process bills, first, a file of
their Starts alone (its peak RSS is the baseline: an importer billing small files), then a backlog of their
next `--minutes` (an Interim a minute, then the Stop), round robin as a NAS sends them. Printed for each run:
the file's size and packets, the importer's peak RSS (VmHWM, read once the spool is billed; then it is
stopped), its CPU per packet and packets/s.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path

from radius_vs_rlm_sql import HOTSPOTCTL, prepare_databases

from devtools.cluster import temporary_cluster
from devtools.detail import detail_entry

STATUS = {"start": "Start", "interim": "Interim-Update", "stop": "Stop"}


def entry(status: str, number: str, index: int, seconds: int, at: int) -> bytes:
    """One entry as radiusd's detail module writes a NAS's packet (with the site's exact receive time)."""
    octets = seconds * 20_000
    return detail_entry(at, [
        ("Acct-Status-Type", STATUS[status]), ("User-Name", f'"{number}"'), ("Acct-Session-Id", f'"bl-{index}"'),
        ("NAS-IP-Address", "127.0.0.1"), ("NAS-Port", index), ("NAS-Port-Type", "Wireless-802.11"),
        ("Calling-Station-Id", f'"02:00:00:00:{index >> 8 & 255:02X}:{index & 255:02X}"'),
        ("Called-Station-Id", '"hotspot1"'), ("Framed-IP-Address", f"10.5.{index >> 8 & 255}.{index & 255}"),
        ("Acct-Session-Time", seconds), ("Acct-Input-Octets", octets), ("Acct-Output-Octets", octets * 9),
        ("Acct-Delay-Time", 0), ("Acct-Authentic", "RADIUS"), ("Class", f"0x{f'hs:tok-{number}'.encode().hex()}"),
        ("Packet-Src-IP-Address", "127.0.0.1"), ("Acct-Unique-Session-Id", f'"{index:032x}"'),
        ("Hotspot-Received-At", f"{at}.{index % 1_000_000:06d}"),
    ])  # fmt: skip


def bill(command: list[str], spool: Path, log: Path) -> tuple[int, float]:
    """Run the importer until the spool is billed; its peak RSS (KiB) and CPU seconds, then stop it."""
    with log.open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        while any(spool.iterdir()):
            if process.poll() is not None:
                raise SystemExit(f"the importer ended: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        status = Path(f"/proc/{process.pid}/status").read_text()
        peak = int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1])
        fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / 100  # utime, stime: clock ticks (USER_HZ 100)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    return peak, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=2000)
    parser.add_argument("--minutes", type=int, default=100)
    args = parser.parse_args()
    with temporary_cluster("bench-backlog-") as (cluster, root):
        settings_file, credentials = prepare_databases(cluster, root, args.sessions)
        span = 60 * args.minutes + 120
        cluster.psql(
            "hotspot",
            "INSERT INTO sessions (status, account_id, card_id, hotspot_id, tariff_id, nas_id, source, auth_token, "
            "username, started_at, last_seen_at) "
            f"SELECT 'pending', NULL, c.id, 1, 1, 1, 'radius', 'tok-' || c.number, c.number, "
            f"now() - interval '{span} seconds', now() - interval '{span} seconds' FROM cards c; ANALYZE sessions;",
        )
        begun = int(time.time()) - span + 60
        spool = root / "spool"
        spool.mkdir()
        command = [HOTSPOTCTL, "--config", settings_file, "radius", "import", "--spool", str(spool)]
        numbers = [number for number, _ in credentials]
        for name, minutes in (("Starts", range(1)), ("backlog", range(1, args.minutes + 1))):
            with (spool / "buffer.detail").open("wb") as file:
                for step in minutes:
                    status = "start" if step == 0 else "stop" if step == args.minutes else "interim"
                    file.writelines(entry(status, n, i, 60 * step, begun + 60 * step) for i, n in enumerate(numbers))
                size = file.tell()
            packets = len(numbers) * len(minutes)
            started = time.perf_counter()
            peak, cpu = bill(command, spool, root / "importer.out")
            elapsed = time.perf_counter() - started
            print(
                f"{name}: {packets:,} packets, {size / 2**20:.1f} MiB: importer peak RSS {peak / 1024:.0f} MiB, "
                f"CPU {cpu / packets * 1e6:.0f} µs a packet, {packets / elapsed:.0f} packets/s (with the polling)"
            )
        closed = cluster.psql("hotspot", "SELECT count(*) FROM sessions WHERE status = 'closed'").strip()
        billed = cluster.psql("hotspot", "SELECT sum(packets) FROM radius_batches").strip()
        print(f"{closed} sessions closed, {billed} packets in committed batches")
    return 0


if __name__ == "__main__":
    sys.exit(main())
