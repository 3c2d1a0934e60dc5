-- 021: a session ended by an administrator (`hotspotctl sessions end ID`, disconnects.reason 'admin') closes
-- with Acct-Terminate-Cause Admin-Reset (RFC 2866), at the NAS (its Accounting-Stop after the Disconnect;
-- sessions_keep_cut_cause keeps it) and at a standalone gate alike. Forward-only; the other reasons keep
-- the causes sql/016 gives them.
CREATE OR REPLACE FUNCTION cut_terminate_cause(p_reason text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE p_reason
        WHEN 'blocked' THEN 'Card-Blocked'
        WHEN 'expired' THEN 'Card-Expired'
        WHEN 'exhausted' THEN 'Balance-Exhausted'
        WHEN 'heartbeat' THEN 'Heartbeat-Timeout'
        WHEN 'page_hidden' THEN 'Page-Hidden'
        WHEN 'page_closed' THEN 'Page-Closed'
        WHEN 'logout' THEN 'User-Request'
        WHEN 'admin' THEN 'Admin-Reset'
        ELSE 'Stale'  -- 'stale'; a 'topup' CoA only ends a session its NAS no longer knows
    END
$$;
