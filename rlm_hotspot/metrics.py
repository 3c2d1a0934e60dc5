"""Prometheus metrics of the long-running processes (the worker, the portal; the NetFlow importer has its
own in flowimport.metrics): counters kept in memory, served as text on a port of their own. The portal's
gunicorn workers count in files and the master serves their sum (`count_in_files`, `serve_workers`).

Every process gets its own registry (tests run several in one interpreter). The quarantine's held rows
(`hotspot_quarantine_held`, by source and reason) are read from the database by the worker each cycle:
one process reports them for the whole installation.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess, start_http_server, values

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def serve(registry: CollectorRegistry, port: int, address: str = "127.0.0.1") -> WSGIServer:
    """Expose /metrics on ``address:port`` from a background thread; `shutdown()` stops it."""
    server, _thread = start_http_server(port, addr=address, registry=registry)
    return server


def count_in_files(directory: Path) -> None:
    """From now on, metrics made in this process and its children (gunicorn's workers, forked later) keep
    their values in files under `directory`, so that one process can serve the sum (`serve_workers`).
    prometheus_client reads the variable when it is imported, which the CLI has done already."""
    os.environ[MULTIPROC_ENV] = str(directory)
    values.ValueClass = values.get_value_class()


def serve_workers(directory: Path, port: int, address: str = "127.0.0.1") -> WSGIServer:
    """Expose the sum over the processes that count in `directory` (`count_in_files`)."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(directory))
    return serve(registry, port, address)


def worker_exited(directory: Path, pid: int) -> None:
    """A gunicorn worker ended: its live gauges no longer count (its counters do)."""
    multiprocess.mark_process_dead(pid, str(directory))


class WorkerMetrics:
    """What the worker did: cycles, cuts queued by reason, what the NAS and the gates answered."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.cycles = Counter(
            "hotspot_worker_cycles", "Worker cycles, by outcome (ok, db_error, error).", ["outcome"],
            registry=self.registry,
        )  # fmt: skip
        self.cycle_seconds = Histogram(
            "hotspot_worker_cycle_seconds", "Duration of one worker cycle.", registry=self.registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )  # fmt: skip
        self.last_cycle = Gauge(
            "hotspot_worker_last_cycle_timestamp_seconds", "When the last cycle ended well.", registry=self.registry
        )
        self.cuts = Counter(
            "hotspot_worker_cuts", "Sessions queued to be cut, by reason (exhausted, expired, admin, ...).",
            ["reason"], registry=self.registry,
        )  # fmt: skip
        self.stale_closed = Counter(
            "hotspot_worker_stale_closed", "RADIUS sessions closed as stale at their last counters.",
            registry=self.registry,
        )  # fmt: skip
        self.nas_answers = Counter(
            "hotspot_worker_nas_requests", "RFC 5176 requests sent, by request (disconnect, coa) and outcome "
            "(ack, nak, timeout, no_nas).", ["request", "outcome"], registry=self.registry,
        )  # fmt: skip
        self.gates = Counter(
            "hotspot_worker_gate_closes", "Standalone gates closed, by outcome (closed, failed).", ["outcome"],
            registry=self.registry,
        )  # fmt: skip
        self.held = Gauge(
            "hotspot_quarantine_held", "Usage records held in the quarantine now, by source and reason.",
            ["source", "reason"], registry=self.registry,
        )  # fmt: skip

    def set_held(self, counts: Iterable[tuple[str, str, int]]) -> None:
        """Replace the held counts (a reason no longer held goes back to 0 rather than vanish)."""
        for sample in next(iter(self.held.collect())).samples:
            self.held.labels(**sample.labels).set(0)
        for source, reason, rows in counts:
            self.held.labels(source=source, reason=reason).set(rows)
