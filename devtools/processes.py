"""Programs a test or benchmark starts (nfacctd, the importer, radiusd...) and stops again: exactly those.

Each runs in a session of its own, so it and every child it forks (nfacctd's plugins) form one process
group that can be waited for and, as a last resort, killed — never anything found by name.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType


class Processes:
    """The programs started through this object, each with the signal that stops it gracefully."""

    def __init__(self) -> None:
        self.started: list[tuple[subprocess.Popen[bytes], int]] = []

    def start(
        self,
        args: Sequence[str],
        log: Path,
        stop_signal: int = signal.SIGINT,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start `args` with its output in `log` (in `cwd`: a program run as another user needs a working
        directory it can reach; initdb refuses to start in one it cannot)."""
        with log.open("wb") as output:
            process = subprocess.Popen(
                list(args), stdout=output, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=cwd
            )
        self.started.append((process, stop_signal))
        return process

    def stop(self, process: subprocess.Popen[bytes], signum: int | None = None, timeout: float = 15.0) -> None:
        """Signal the process (its stop signal by default), wait for it and for its whole group to exit;
        what still runs after `timeout` is killed."""
        if signum is None:
            signum = next((stop for started, stop in self.started if started is process), signal.SIGINT)
        if process.poll() is None:
            process.send_signal(signum)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                print(f"pid {process.pid} ignored signal {signum} for {timeout:.0f} s: killing it", file=sys.stderr)
                process.kill()
                process.wait()
        deadline = time.monotonic() + timeout
        while group_alive(process.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if group_alive(process.pid):  # the group of the session we created for it: nothing else is in it
            os.killpg(process.pid, signal.SIGKILL)

    def stop_all(self) -> None:
        """Gracefully, last started first."""
        for process, _ in reversed(self.started):
            self.stop(process)

    def kill_all(self) -> None:
        """At once (a test's teardown): whatever is still running, with its children."""
        for process, _ in self.started:
            if process.poll() is None:
                process.kill()
                process.wait()
            if group_alive(process.pid):
                os.killpg(process.pid, signal.SIGKILL)


def group_alive(pgid: int) -> bool:
    """Any live (non-zombie) process left in the group, e.g. an nfacctd plugin."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


@contextmanager
def exit_on_signals(signals: Sequence[int] = (signal.SIGTERM, signal.SIGHUP)) -> Iterator[None]:
    """Within it, SIGTERM and SIGHUP (`timeout`, a closed terminal) end the program as Ctrl-C does, through its
    `finally` blocks, so that it stops what it started: by default Python dies on them at once, leaving a
    private PostgreSQL cluster (which pg_ctl detaches from our process group) running. A second signal while
    those blocks run is ignored, so it cannot cut the cleanup short."""

    def leave(signum: int, _frame: FrameType | None) -> None:
        for other in signals:
            signal.signal(other, signal.SIG_IGN)
        raise SystemExit(128 + signum)

    previous = {signum: signal.signal(signum, leave) for signum in signals}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
