-- 014: one client identity for the lockout, unknown card numbers count, a card's holder is not locked
-- out by others' guesses, and a session cut by the worker keeps the worker's reason. Forward-only.
--
-- * The client a wrong PIN counts against is named the same way by RADIUS and by the portal: the
--   device's MAC when known (Calling-Station-Id; the NAS's redirect to the portal), in one spelling
--   (aa:bb:cc:dd:ee:ff), else its IP (rlm_hotspot.core.clients; `client_identity` below is the same rule,
--   for a session's stored Calling-Station-Id and address).
-- * A well-formed card number that does not exist counts against the client like a wrong PIN: guessing
--   card numbers costs as much as guessing PINs (a typo is refused by the check digit before, and never
--   counts).
-- * Wrong PINs typed for a card do not lock out the card's holder: the device of the card's latest
--   session (live or ended). Anyone can lock a card by typing its number with wrong PINs from many
--   devices; its guest keeps the live session and may log in again from that device. The holder's
--   device is still counted as a client like any other.
-- * A RADIUS session the worker had its NAS disconnect is closed by the NAS's Accounting-Stop, which
--   says `Admin-Reset` whatever the reason: the session keeps the worker's reason instead
--   (`Balance-Exhausted`, `Card-Blocked`, ..., `User-Request` for a logout on the portal; docs/worker.md).

CREATE FUNCTION client_identity(p_station text, p_ip text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN regexp_replace(lower(btrim(p_station)), '[-:.]', '', 'g') ~ '^[0-9a-f]{12}$'
            THEN regexp_replace(regexp_replace(lower(btrim(p_station)), '[-:.]', '', 'g'), '(..)(?=.)', '\1:', 'g')
        ELSE coalesce(p_ip, nullif(left(btrim(p_station), 64), ''))
    END
$$;

-- The attempts that count against a client: wrong PINs and unknown card numbers.
CREATE INDEX login_attempts_guesses_by_client ON login_attempts (client, at)
    WHERE outcome IN ('wrong_pin', 'unknown_card');
DROP INDEX login_attempts_failed_by_client;

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
                                   p_pending_ttl)),
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

-- What a session cut by the worker ends with, by the reason it was cut (disconnects.reason).
CREATE FUNCTION cut_terminate_cause(p_reason text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE p_reason
        WHEN 'blocked' THEN 'Card-Blocked'
        WHEN 'expired' THEN 'Card-Expired'
        WHEN 'exhausted' THEN 'Balance-Exhausted'
        WHEN 'heartbeat' THEN 'Heartbeat-Timeout'
        WHEN 'logout' THEN 'User-Request'
        ELSE 'Stale'  -- 'stale'; a 'topup' CoA only ends a session its NAS no longer knows
    END
$$;

-- The NAS's Accounting-Stop after a Disconnect the worker sent (claimed: attempts > 0; acknowledged, or
-- its answer not recorded yet) says Admin-Reset: keep the worker's reason. Fires only on that close.
CREATE FUNCTION keep_cut_cause() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    cut_reason text;
BEGIN
    SELECT d.reason INTO cut_reason FROM disconnects d
    WHERE d.session_id = NEW.id AND d.reason <> 'topup' AND d.attempts > 0
      AND (d.done_at IS NULL OR d.outcome = 'ack')
    ORDER BY d.id DESC LIMIT 1;
    IF cut_reason IS NOT NULL THEN
        NEW.terminate_cause := cut_terminate_cause(cut_reason);
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER sessions_keep_cut_cause BEFORE UPDATE OF status ON sessions FOR EACH ROW
    WHEN (OLD.status <> 'closed' AND NEW.status = 'closed' AND NEW.terminate_cause = 'Admin-Reset')
    EXECUTE FUNCTION keep_cut_cause();

