"""What the kernel and the spool say about the collector: UDP drops on its port, files waiting."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from flowimport.spool import pending_files

PROC_UDP = (Path("/proc/net/udp"), Path("/proc/net/udp6"))


def udp_drops(port: int, tables: tuple[Path, ...] = PROC_UDP) -> int | None:
    """Datagrams dropped by the kernel on sockets bound to ``port`` (None: no such socket).

    NetFlow rides on UDP: what overflows the receive buffer never reaches nfacctd, and nothing
    downstream can see it. Raise ``nfacctd_pipe_size`` (capped by net.core.rmem_max) if this grows.
    """
    total: int | None = None
    for table in tables:
        try:
            lines = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) >= 13 and int(fields[1].rsplit(":", 1)[1], 16) == port:
                total = (total or 0) + int(fields[-1])
    return total


@dataclass(frozen=True)
class SpoolBacklog:
    files: int
    oldest_bin_start: datetime | None


def spool_backlog(spool: Path) -> SpoolBacklog:
    """Files not yet imported and moved, and the oldest bin among them."""
    files = pending_files(spool)
    return SpoolBacklog(len(files), files[0].bin_start if files else None)
