-- 002: NetFlow traffic import (flowimport). Each batch — one purge block of one nfacctd spool file — is
-- recorded here in the same transaction as its debits, so a replayed or re-delivered batch does nothing.
-- Batches imported in one transaction (both directions of a bin, or a backlog) share their debits: one
-- ledger row per session, keyed 'flow:<debit_batch_id>:<session id>', where debit_batch_id is the first
-- batch of that transaction; that batch also stores the transaction's totals (0 on the others), so sums
-- over any set of whole transactions are right.

CREATE TABLE flow_batches (
    id bigserial PRIMARY KEY,
    hotspot_id integer NOT NULL REFERENCES hotspots,
    name text NOT NULL,                 -- '<spool file name>#<pmacct writer id>#<digest of the block>'
    direction text NOT NULL CHECK (direction IN ('download', 'upload')),
    bin_start timestamptz NOT NULL,     -- earliest bin in the batch (UTC)
    bin_end timestamptz NOT NULL,       -- end of the latest bin
    records integer NOT NULL CHECK (records >= 0),
    malformed integer NOT NULL DEFAULT 0 CHECK (malformed >= 0),
    debit_batch_id bigint REFERENCES flow_batches,  -- first batch of the transaction (ledger keys)
    -- totals of the transaction, on its first batch: attributed billable / free bytes, unattributed bytes,
    -- sessions debited and minor units taken from balances
    sessions integer NOT NULL DEFAULT 0,
    billable_bytes bigint NOT NULL DEFAULT 0,
    free_bytes bigint NOT NULL DEFAULT 0,
    unattributed_bytes bigint NOT NULL DEFAULT 0,
    debited bigint NOT NULL DEFAULT 0,
    imported_at timestamptz NOT NULL,
    UNIQUE (hotspot_id, name)
);
CREATE INDEX flow_batches_latest ON flow_batches (hotspot_id, bin_end DESC);

-- Traffic of an IP that no session held at the time: kept for the report, never billed, never dropped.
CREATE TABLE unattributed_traffic (
    batch_id bigint NOT NULL REFERENCES flow_batches ON DELETE CASCADE,
    ip inet NOT NULL,
    bin_start timestamptz NOT NULL,
    free boolean NOT NULL,              -- tagged free by the pre_tag_map
    bytes bigint NOT NULL CHECK (bytes >= 0)
);
CREATE INDEX unattributed_traffic_batch ON unattributed_traffic (batch_id);
CREATE INDEX unattributed_traffic_ip ON unattributed_traffic (ip, bin_start);

CREATE VIEW admin_flow_batches AS
SELECT b.id, h.name AS hotspot, b.name, b.direction, b.bin_start, b.bin_end, b.records, b.malformed,
       b.sessions, b.billable_bytes, b.free_bytes, b.unattributed_bytes, b.debit_batch_id, b.debited, b.imported_at
FROM flow_batches b JOIN hotspots h ON h.id = b.hotspot_id;

CREATE VIEW admin_unattributed_traffic AS
SELECT h.name AS hotspot, u.ip, u.bin_start, b.direction, u.free, u.bytes, b.name AS batch
FROM unattributed_traffic u
JOIN flow_batches b ON b.id = u.batch_id
JOIN hotspots h ON h.id = b.hotspot_id;
