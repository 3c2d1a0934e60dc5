"""The portal process's heartbeat writer: a thread that writes the heartbeats billed in memory.

A guest's heartbeat on a session this process already knows is billed in memory and answered at once
(`keep_alive_without_lock(defer=True)`); this thread writes all of them every `delay` in one statement,
so hundreds of heartbeats a second cost PostgreSQL one guarded row each instead of a round trip and a
commit each. What the delay may cost: the database sees a heartbeat up to `delay` late (far below any
heartbeat timeout; the worker enforces at a slower pace anyway); a process killed outright loses at most
its last `delay` of heartbeat *marks* — the next heartbeat restates the cumulative online time, so no
money is lost or billed twice. A clean exit (gunicorn's SIGTERM) writes them first, and so does every
other use of the database in the process that needs the balance (`PortalContext.unit_of_work`).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable

from sqlalchemy.exc import DBAPIError

from rlm_hotspot.logs import first_line

log = logging.getLogger(__name__)


class HeartbeatWriter:
    """Runs `write` every `delay_s` in a thread started by the first deferred heartbeat of each process
    (a thread does not survive a fork, so the process id is checked)."""

    def __init__(self, write: Callable[[], int], delay_s: float) -> None:
        self._write = write
        self.delay_s = delay_s
        self._started_in: int | None = None
        self._stop = threading.Event()
        self._starting = threading.Lock()
        self._writing = threading.Lock()

    def ensure_running(self) -> None:
        if self._started_in == os.getpid():
            return
        with self._starting:
            if self._started_in != os.getpid():
                self._stop = threading.Event()
                threading.Thread(target=self._run, name="heartbeat-writer", daemon=True).start()
                atexit.register(self.stop)
                self._started_in = os.getpid()

    def write_now(self) -> int:
        """Write what is pending now; a failure is logged and left pending (tried again next time)."""
        with self._writing:
            try:
                return self._write()
            except DBAPIError as exc:  # the database is away: an expected fault, one line
                log.error("could not write the heartbeats billed in memory (kept; trying again): %s", first_line(exc))
                return 0
            except Exception:  # a bug: its traceback says where
                log.exception("could not write the heartbeats billed in memory (kept; trying again)")
                return 0

    def stop(self) -> None:
        """Stop the thread and write what is left (at exit)."""
        self._stop.set()
        self.write_now()

    def _run(self) -> None:
        stop = self._stop
        while not stop.wait(self.delay_s):
            self.write_now()
