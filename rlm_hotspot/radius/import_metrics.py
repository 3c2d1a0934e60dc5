"""Prometheus metrics of the accounting importer (`hotspotctl radius import --metrics-port`).

One registry per importer process (one spool), served as the NetFlow importer serves its own
(`rlm_hotspot.spool_importer.ImporterMetrics`). The backlog and the lag are read from the spool's files at
every scrape (the module's collector, under the importer's names), never counted: they stay true across
restarts and while the database is down.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import Counter, Gauge, Histogram

from rlm_hotspot.radius.metrics import BufferCollector
from rlm_hotspot.spool_importer import ImporterMetrics

#: A batch of 2,000 packets takes ~0.5 s here; a trickle a few milliseconds; a slow database many seconds.
BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ImportMetrics(ImporterMetrics):
    """What the importer billed, how long its batches took, what failed, and what still waits."""

    def __init__(self, buffer_file: Path) -> None:
        super().__init__()
        self.packets = Counter(
            "hotspot_radius_import_packets", "Buffered accounting packets imported, by outcome (billed; unbilled: "
            "acknowledged and logged, not billed; refused: the database refused it, logged and skipped).",
            ["outcome"], registry=self.registry,
        )  # fmt: skip
        self.held = Counter(
            "hotspot_radius_import_held", "Usage beyond the bounds held in the quarantine (one per quantity held).",
            registry=self.registry,
        )  # fmt: skip
        self.batches = Counter(
            "hotspot_radius_import_batches", "Batches committed, by mode (batch: billed together; isolated: "
            "packet by packet after the batch failed).", ["mode"], registry=self.registry,
        )  # fmt: skip
        self.batch_seconds = Histogram(
            "hotspot_radius_import_batch_seconds", "Time to bill and commit one batch.", registry=self.registry,
            buckets=BATCH_BUCKETS,
        )  # fmt: skip
        self.phase_seconds = Counter(
            "hotspot_radius_import_phase_seconds", "Seconds the batches spent, by phase (read: the sessions and "
            "cards; plan: decoding and the rules; write: the planned statements; single: packets billed one by one; "
            "record: the batch's row; commit).", ["phase"], registry=self.registry,
        )  # fmt: skip
        self.synced_bytes = Gauge(
            "hotspot_radius_import_synced_bytes", "Size of radiusd's live buffer.detail at its last fdatasync by "
            "the importer (each poll): what a power cut of the host can no longer lose.", registry=self.registry,
        )  # fmt: skip
        self.torn = Counter(
            "hotspot_radius_import_torn_entries",
            "Torn entries of claimed files (radiusd died writing one, or a power cut cut the file short): not billed.",
            registry=self.registry,
        )  # fmt: skip
        self.errors = Counter(
            "hotspot_radius_import_database_errors", "Database errors, by kind (unavailable: the pass is retried; "
            "refused: a batch billed again packet by packet).", ["kind"], registry=self.registry,
        )  # fmt: skip
        self.pruned = Counter(
            "hotspot_radius_import_pruned_batches", "radius_batches rows of deleted files removed after the "
            "retention.", registry=self.registry,
        )  # fmt: skip
        for outcome in ("billed", "unbilled", "refused"):
            self.packets.labels(outcome)
        for mode in ("batch", "isolated"):
            self.batches.labels(mode)
        for phase in ("read", "plan", "write", "single", "record", "commit"):
            self.phase_seconds.labels(phase)
        for kind in ("unavailable", "refused"):
            self.errors.labels(kind)
        self.registry.register(BufferCollector(buffer_file, prefix="hotspot_radius_import_backlog"))
