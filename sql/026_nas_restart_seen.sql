-- 026: a NAS's guests can log in again at once after it rebooted, with buffered accounting too. Forward-only.
--
-- With buffered accounting radiusd answers the Accounting-On when it is written to the buffer; the sessions
-- it ends are closed only when the importer bills it (seconds later, minutes with a backlog). Meanwhile
-- every session of that NAS still counted as live and took its card's simultaneous-use slot: after a
-- reboot storm every guest's new login was refused "in use on another device" (bench/reboot_storm.py:
-- 5,000 of 5,000). radiusd now records the Accounting-On/Off in nas.restart_seen_at (hotspot_sql, from its
-- thread pool, no python3 call) when it answers, and a session that began before its NAS restarted no
-- longer holds a slot. A column of its own, not rebooted_at: that one clamps the start of the sessions the
-- importer opens and must move only in the billing order.

ALTER TABLE nas ADD COLUMN restart_seen_at timestamptz;

-- An Accounting-On/Off answered at radiusd's receive time `p_received` (unix seconds) for the NAS at
-- `p_nas_ip`, `p_delay` seconds after the NAS sent it. A late copy of an older one changes nothing.
CREATE FUNCTION radius_restart_seen(p_nas_ip inet, p_received bigint, p_delay bigint) RETURNS void
LANGUAGE sql AS $$
    UPDATE nas SET restart_seen_at = GREATEST(restart_seen_at, to_timestamp(p_received - p_delay))
    WHERE ip_address = p_nas_ip;
$$;

CREATE OR REPLACE FUNCTION login_snapshot(p_number text, p_nas_ip inet, p_hotspot_id integer, p_client text,
                                          p_at timestamptz, p_window integer, p_pending_ttl integer)
RETURNS login_facts LANGUAGE plpgsql STABLE AS $$
DECLARE
    facts login_facts;
BEGIN
    WITH place AS (
        SELECT n.id AS nas_id, n.vendor AS nas_vendor, h.*
        FROM hotspots h LEFT JOIN nas n ON n.hotspot_id = h.id AND n.ip_address = p_nas_ip
        WHERE (p_nas_ip IS NOT NULL AND n.id IS NOT NULL) OR h.id = p_hotspot_id
        ORDER BY n.id NULLS LAST LIMIT 1
    )
    SELECT c.id, c.number, c.status, c.blocked, c.account_id, c.activated_at, c.pin_secret,
           c.pin_key_id, b.face_value, b.tariff_id, b.hotspot_id, b.valid_from, b.use_before,
           b.validity_seconds, b.expires_at, a.balance,
           (SELECT count(*) FROM sessions s JOIN hotspots sh ON sh.id = s.hotspot_id
             WHERE s.card_id = c.id AND s.status <> 'closed'
               AND session_is_live(s.status, s.last_seen_at, sh.interim_interval, sh.stale_grace, p_at,
                                   p_pending_ttl)
               AND NOT EXISTS (SELECT 1 FROM nas sn WHERE sn.id = s.nas_id AND sn.restart_seen_at > s.started_at)),
           p.nas_id, p.nas_vendor, p.id, p.timezone, p.tariff_id, p.mode, p.traffic_meter,
           p.interim_interval, p.idle_timeout, p.max_session_seconds,
           CASE WHEN p_client IS NOT NULL AND p_client IS NOT DISTINCT FROM
                     (SELECT client_identity(s.calling_station_id, host(s.framed_ip)) FROM sessions s
                       WHERE s.card_id = c.id ORDER BY s.started_at DESC LIMIT 1)
                THEN 0  -- the card's holder
                ELSE (SELECT count(*) FROM login_attempts la
                       WHERE la.card_number = p_number AND la.outcome = 'wrong_pin'
                         AND la.at > GREATEST(p_at - make_interval(secs => p_window),
                                              (SELECT lc.cleared_at FROM lockout_clears lc
                                                WHERE lc.kind = 'card' AND lc.subject = p_number)))
           END,
           (SELECT count(*) FROM login_attempts la
             WHERE la.client = p_client AND la.outcome IN ('wrong_pin', 'unknown_card')
               AND la.at > GREATEST(p_at - make_interval(secs => p_window),
                                    (SELECT lc.cleared_at FROM lockout_clears lc
                                      WHERE lc.kind = 'client' AND lc.subject = p_client)))
    INTO facts
    FROM (SELECT 1) AS one
    LEFT JOIN cards c ON c.number = p_number
    LEFT JOIN card_batches b ON b.id = c.batch_id
    LEFT JOIN accounts a ON a.id = c.account_id
    LEFT JOIN place p ON true;
    RETURN facts;
END $$;
