"""Prometheus metrics of the NetFlow importer: served over HTTP, or a textfile for node_exporter (the registry
and both ways out are the importers' shared `ImporterMetrics`)."""

from __future__ import annotations

from typing import TypeVar

from prometheus_client import Counter, Gauge

from rlm_hotspot.spool_importer import ImporterMetrics

Metric = TypeVar("Metric", Counter, Gauge)


class Metrics(ImporterMetrics):
    """One registry per importer (one hotspot), labelled with the hotspot name."""

    def __init__(self, hotspot: str) -> None:
        super().__init__()
        self.hotspot = hotspot
        labels = ["hotspot"]

        def counter(name: str, doc: str, extra: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, [*labels, *extra], registry=self.registry)

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, labels, registry=self.registry)

        self.batches = counter("hotspot_flows_batches", "Purge blocks handled, by outcome.", ("outcome",))
        self.records = counter("hotspot_flows_records", "Aggregated records imported.")
        self.malformed = counter("hotspot_flows_malformed_records", "Records skipped as malformed.")
        self.incomplete = counter("hotspot_flows_incomplete_blocks", "Blocks never closed by nfacctd: not imported.")
        self.bytes = counter("hotspot_flows_bytes", "IP-layer bytes imported, by class.", ("class",))
        self.debited = counter("hotspot_flows_debited_minor_units", "Money debited for traffic (minor units).")
        self.held_records = counter(
            "hotspot_flows_held_counts", "Counts beyond the line rate: held in the quarantine, by reason.", ("reason",)
        )
        self.held_bytes = counter(
            "hotspot_flows_held_bytes", "Bytes beyond the line rate: held in the quarantine, not billed.", ("reason",)
        )
        self.files_failed = counter("hotspot_flows_failed_files", "Spool files moved to failed/: never imported.")
        self.errors = counter("hotspot_flows_errors", "Cycles or batches that failed (and will be retried).")
        self.last_bin_end = gauge("hotspot_flows_last_bin_end_timestamp_seconds", "End of the newest imported bin.")
        self.lag = gauge("hotspot_flows_lag_seconds", "Now minus the end of the newest imported bin.")
        self.pending = gauge("hotspot_flows_pending_files", "Spool files waiting to be imported.")
        self.udp_drops = gauge("hotspot_flows_udp_drops", "Datagrams the kernel dropped on the collector socket.")

    def child(self, metric: Metric, **labels: str) -> Metric:
        return metric.labels(hotspot=self.hotspot, **labels)
