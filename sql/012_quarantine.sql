-- 012: usage that no physical link could have carried is held, not billed. Forward-only.
--
-- A RADIUS counter or a NetFlow count that exceeds what is possible since the previous counters (time:
-- the wall clock elapsed; bytes: the hotspot's line rate x the time elapsed) is billed up to that bound;
-- the excess is stored here with the packet's or record's identity and the reason, for an admin to
-- release (bill it after all) or dismiss (`hotspotctl quarantine`). See docs/billing.md.

-- The most bytes per second one guest can move each way, in kbit/s (default 1 Gbit/s).
ALTER TABLE hotspots ADD COLUMN max_rate_kbps integer NOT NULL DEFAULT 1000000 CHECK (max_rate_kbps > 0);

-- The NAS's own counter positions, when they differ from what was billed: after a quarantine the NAS
-- counts on from a position that was not billed, and its next increments must be measured from there.
-- NULL: the same as the billed counter (the common case: the hot path never writes them).
ALTER TABLE sessions
    ADD COLUMN reported_seconds bigint,
    ADD COLUMN reported_input_octets bigint,
    ADD COLUMN reported_output_octets bigint,
    -- when the byte counters last moved (NULL: at started_at): the start of the next increment's bound
    ADD COLUMN counters_at timestamptz;

CREATE TABLE quarantine (
    id bigserial PRIMARY KEY,
    source text NOT NULL CHECK (source IN ('radius', 'netflow')),
    -- why it was held: 'time-beyond-clock', 'bytes-beyond-line-rate', 'counter-out-of-range', ...
    reason text NOT NULL,
    -- which quantity: seconds online, bytes from the guest (upload) or to the guest (download)
    quantity text NOT NULL CHECK (quantity IN ('seconds', 'upload', 'download')),
    held numeric(20, 0) NOT NULL CHECK (held > 0),      -- the excess, in seconds or bytes (may exceed BIGINT)
    reported numeric(20, 0),                            -- the counter as the packet or record stated it
    session_id bigint REFERENCES sessions,              -- the session it would have been billed to, if any
    hotspot_id integer REFERENCES hotspots,
    nas_id integer REFERENCES nas,
    identity text NOT NULL,                             -- the packet or record, as an admin finds it again
    detail jsonb NOT NULL DEFAULT '{}',                 -- the decoded packet or record
    received_at timestamptz NOT NULL,
    state text NOT NULL DEFAULT 'held' CHECK (state IN ('held', 'released', 'dismissed')),
    resolved_at timestamptz,
    resolved_by text,
    resolution_note text,
    -- a retransmitted packet or a re-delivered record is held once
    idempotency_key text NOT NULL UNIQUE,
    CHECK ((state = 'held') = (resolved_at IS NULL))
);
CREATE INDEX quarantine_held ON quarantine (received_at) WHERE state = 'held';
CREATE INDEX quarantine_session ON quarantine (session_id) WHERE session_id IS NOT NULL;

CREATE VIEW admin_quarantine AS
SELECT q.id, q.source, q.reason, q.quantity, q.held, q.reported, q.session_id, h.name AS hotspot,
       n.name AS nas, c.number AS card_number, q.identity, q.received_at, q.state, q.resolved_at,
       q.resolved_by, q.resolution_note, q.detail
FROM quarantine q
LEFT JOIN hotspots h ON h.id = q.hotspot_id
LEFT JOIN nas n ON n.id = q.nas_id
LEFT JOIN sessions s ON s.id = q.session_id
LEFT JOIN cards c ON c.id = s.card_id;
