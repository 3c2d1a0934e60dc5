"""CPU time of a process and everything it started, read from /proc, for the benchmarks' per-unit figures.

A process tree's CPU is the sum, over its live processes, of their own time (utime + stime, every thread)
and of their reaped children's (cutime + cstime): a PostgreSQL backend that exited is counted in the
postmaster's children's time once the postmaster has reaped it, so connections opened and closed during
a measurement are not lost.
"""

from __future__ import annotations

import os
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, own + reaped children's CPU seconds) of a live process; None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the name may hold spaces and parentheses
    # after the name: state ppid ... utime(12) stime(13) cutime(14) cstime(15), counted from state = 0
    return int(fields[1]), sum(int(value) for value in fields[11:15]) / TICKS


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds spent so far by process `root` and its live descendants (and the children they reaped)."""
    stats = {int(entry.name): _stat(int(entry.name)) for entry in Path("/proc").iterdir() if entry.name.isdigit()}
    children: dict[int, list[int]] = {}
    for pid, stat in stats.items():
        if stat is not None:
            children.setdefault(stat[0], []).append(pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        stat = stats.get(pid)
        if stat is not None:
            total += stat[1]
            todo.extend(children.get(pid, []))
    return total


def postmaster_pid(datadir: Path) -> int:
    """The PID of the cluster's postmaster (the first line of its postmaster.pid)."""
    return int((datadir / "postmaster.pid").read_text().split("\n", 1)[0])
