-- 025: batches of buffered RADIUS accounting billed by `hotspotctl radius import` (docs/radius.md,
-- "Buffered accounting"). Forward-only.
--
-- radiusd writes each Accounting-Request to a detail file and answers; the importer renames that file and
-- bills its entries in batches, one transaction each. A batch — a byte range of one renamed file — is
-- recorded here in the same transaction as its ledger rows, so after a crash the importer resumes each
-- file right after its last committed batch: nothing is billed twice, nothing is skipped.
CREATE TABLE radius_batches (
    id bigserial PRIMARY KEY,
    spool_file text NOT NULL,           -- '<host>:<path of the renamed detail file>'
    first_byte bigint NOT NULL CHECK (first_byte >= 0),
    end_byte bigint NOT NULL CHECK (end_byte > first_byte),
    packets integer NOT NULL CHECK (packets >= 0),
    unbilled integer NOT NULL DEFAULT 0 CHECK (unbilled >= 0),  -- acknowledged, not billed (logged)
    committed_at timestamptz NOT NULL,  -- clock_timestamp() as the batch's transaction ends
    UNIQUE (spool_file, first_byte)
);
CREATE INDEX radius_batches_latest ON radius_batches (spool_file, end_byte DESC);
