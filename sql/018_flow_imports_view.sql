-- 018: NetFlow imports as an admin reads them. Forward-only.
--
-- One import transaction bills one or more batches (both directions of a bin, a backlog) and rounds each
-- session's debit once, on its cumulative meter: its money and sessions have no exact per-batch value,
-- so they are stored on the transaction's first batch (002). admin_flow_batches lists batches; this view
-- lists imports, one row each, with their batches and the totals that belong to them.
CREATE VIEW admin_flow_imports AS
SELECT first.id AS import_id, h.name AS hotspot, first.imported_at,
       array_agg(b.name ORDER BY b.id) AS batches, count(*) AS batch_count,
       sum(b.records) AS records, sum(b.malformed) AS malformed,
       min(b.bin_start) AS bin_start, max(b.bin_end) AS bin_end,
       first.sessions, first.billable_bytes, first.free_bytes, first.unattributed_bytes, first.debited
FROM flow_batches b
JOIN flow_batches first ON first.id = b.debit_batch_id
JOIN hotspots h ON h.id = first.hotspot_id
GROUP BY first.id, h.name;
