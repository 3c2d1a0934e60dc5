"""The worker's life: cycles until SIGTERM, a database outage waited out, a guest's logout heard at once."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from rlm_hotspot.db.enforcement import WakeListener
from rlm_hotspot.db.engine import make_engine
from rlm_hotspot.logs import first_line
from rlm_hotspot.metrics import serve
from rlm_hotspot.nas.gates import make_gate
from rlm_hotspot.services.access import Policy
from rlm_hotspot.settings import Settings
from rlm_hotspot.worker.cycle import Worker

log = logging.getLogger("rlm_hotspot.worker")

MAX_OUTAGE_WAIT_S = 60


def run_until_stopped(
    worker: Worker, interval_s: float, stop: threading.Event, wake: WakeListener | None = None
) -> None:
    """Run cycles every `interval_s` until `stop` is set; never dies of a database outage or a bug.

    While the database is unreachable the wait doubles from `interval_s` up to MAX_OUTAGE_WAIT_S. With
    `wake`, a cut queued for at once (a guest's logout in RADIUS mode) ends the wait.
    """
    outage_wait: float | None = None
    while not stop.is_set():
        wait = interval_s
        try:
            worker.run_cycle()
            if outage_wait is not None:
                log.info("database reachable again")
            outage_wait = None
        except SQLAlchemyError as exc:
            outage_wait = interval_s if outage_wait is None else min(outage_wait * 2, MAX_OUTAGE_WAIT_S)
            wait = outage_wait
            log.error("database unavailable (%s); next try in %g s", first_line(exc), wait)
        except Exception:
            log.exception("worker cycle failed; next try in %g s", wait)
        if wake is None:
            stop.wait(wait)
        else:
            wake.wait(wait, stop)


def run(
    settings: Settings,
    transaction: Callable[[], AbstractContextManager[Session]],
    policy: Policy,
    *,
    interval_s: float,
    once: bool,
    gate: str,
    gate_options: dict[str, str],
    metrics_port: int | None,
    metrics_address: str,
) -> None:
    """Run the worker with gate driver `gate` until SIGTERM or SIGINT (one cycle with `once`).

    Raises GateError, before anything has run, when the gate driver or its options are wrong.
    """
    closer = make_gate(gate, gate_options).close
    the_worker = Worker(transaction=transaction, policy=policy, close_gate=closer)
    if metrics_port is not None:
        serve(the_worker.metrics.registry, metrics_port, metrics_address)
    if once:
        the_worker.run_cycle()
        return
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    log.info("worker started: a cycle every %g s, gate %r", interval_s, gate)
    if gate == "none":
        log.info("gate 'none': standalone sessions are closed in the database only, no firewall is touched")
    wake = None
    if settings.transaction_pooling:  # a LISTEN would stay on a server connection other clients get
        log.info("transaction pooling: no LISTEN, a guest's logout waits for the next cycle (at most %g s)", interval_s)
    else:
        wake = WakeListener(make_engine(settings, pool_size=1, pre_ping=False, application_name="hotspotctl wake"))
    try:
        run_until_stopped(the_worker, interval_s, stop, wake)
    finally:
        if wake is not None:
            wake.close()
    log.info("worker stopped")
