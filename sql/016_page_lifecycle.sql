-- 016: what the guest's status page last said about itself, and how long a hidden page keeps its
-- session. Forward-only. See docs/billing.md ("Time a gate was open") and docs/portal.md.
--
-- A phone freezes a page it has put in the background: its heartbeats stop although the guest did not
-- leave. The page says so before it goes quiet (Page Lifecycle: visibilitychange, pagehide +
-- navigator.sendBeacon), and the heartbeat rule then gives it `hidden_grace` seconds instead of
-- `heartbeat_timeout`; a page that says it was closed ends its session a few seconds later. Either way
-- the time until the cut is billed: the gate was open.

-- Seconds a hidden (backgrounded, frozen) status page keeps its session after its last sign of life.
ALTER TABLE hotspots ADD COLUMN hidden_grace integer NOT NULL DEFAULT 600 CHECK (hidden_grace >= 0);

-- 'hidden' (the page went to the background) or 'closed' (the page was closed; it counts only while no
-- sign of life came after it: a reload sends one at once); NULL: visible, or nothing said.
-- The heartbeat hot path never writes them (a HOT update either way: neither is indexed).
ALTER TABLE sessions
    ADD COLUMN page_state text CHECK (page_state IN ('hidden', 'closed')),
    ADD COLUMN page_state_at timestamptz;

-- The heartbeat rule's two new cut reasons get causes of their own (sql/014 maps the others).
CREATE OR REPLACE FUNCTION cut_terminate_cause(p_reason text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE p_reason
        WHEN 'blocked' THEN 'Card-Blocked'
        WHEN 'expired' THEN 'Card-Expired'
        WHEN 'exhausted' THEN 'Balance-Exhausted'
        WHEN 'heartbeat' THEN 'Heartbeat-Timeout'
        WHEN 'page_hidden' THEN 'Page-Hidden'
        WHEN 'page_closed' THEN 'Page-Closed'
        WHEN 'logout' THEN 'User-Request'
        ELSE 'Stale'  -- 'stale'; a 'topup' CoA only ends a session its NAS no longer knows
    END
$$;
