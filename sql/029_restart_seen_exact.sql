-- 029: a buffered NAS restart is seen at radiusd's exact receive time, not its whole second. Forward-only.
--
-- radius_restart_seen (026) set nas.restart_seen_at to the whole second radiusd received the Accounting-On
-- in (%l): a session opened earlier in that second still held its card's slot after the restart, so its
-- guest's login in the same second was refused. The virtual server now also passes the microseconds of the
-- same receive time (%M, six digits) and writes both into the buffered entry (Hotspot-Received-At), which
-- the importer bills the On at. `p_usec` defaults to 0 so that a site written before this migration (three
-- arguments) goes on working, to the second, until `hotspotctl radius install` writes the new one.

DROP FUNCTION radius_restart_seen(inet, bigint, bigint);

CREATE FUNCTION radius_restart_seen(p_nas_ip inet, p_received bigint, p_delay bigint, p_usec bigint DEFAULT 0)
RETURNS void LANGUAGE sql AS $$
    -- microseconds as an integer count of an interval: to_timestamp(double) would round them
    UPDATE nas SET restart_seen_at = GREATEST(restart_seen_at,
                                              to_timestamp(p_received - p_delay) + p_usec * interval '1 microsecond')
    WHERE ip_address = p_nas_ip;
$$;
