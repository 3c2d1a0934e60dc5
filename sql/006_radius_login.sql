-- 006: a RADIUS login in one round trip. Forward-only.
--
-- radiusd runs the module's hooks one at a time, so the login rate is 1 / (time in the hook), and a
-- round trip to PostgreSQL is most of that time. 005 needed two per accepted login (the snapshot in
-- authorize, the reservation in post-auth). Here one call locks the card, reads the snapshot and, when
-- the card looks usable, takes the simultaneous-use slot at once. The billing rules themselves stay in
-- Python (rlm_hotspot.services.access): when they refuse a login that was reserved, the adapter undoes
-- the reservation with cancel_radius_login (a second round trip, on refusals only).

-- Everything a login decision needs about a card and the place it is used.
CREATE TYPE login_facts AS (
    card_id bigint, number text, status text, blocked boolean, account_id bigint, activated_at timestamptz,
    pin_secret bytea, pin_key_id smallint, face_value bigint, batch_tariff_id integer, batch_hotspot_id integer,
    valid_from timestamptz, use_before timestamptz, validity_seconds bigint, expires_at timestamptz,
    balance bigint, live_sessions bigint,
    nas_id integer, nas_vendor text, hotspot_id integer, hotspot_timezone text, hotspot_tariff_id integer,
    hotspot_mode text, traffic_meter text, interim_interval integer, idle_timeout integer,
    max_session_seconds integer,
    card_failures bigint, client_failures bigint
);

-- The login snapshot (the portal reads it as it is; radius_login reads it under the card lock). The place
-- is the NAS with that address, or else the hotspot with that id. Wrong PINs count inside the lockout
-- window and after the last time an admin cleared them.
CREATE FUNCTION login_snapshot(p_number text, p_nas_ip inet, p_hotspot_id integer, p_client text,
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
           (SELECT count(*) FROM login_attempts la
             WHERE la.card_number = p_number AND la.outcome = 'wrong_pin'
               AND la.at > GREATEST(p_at - make_interval(secs => p_window),
                                    (SELECT lc.cleared_at FROM lockout_clears lc
                                      WHERE lc.kind = 'card' AND lc.subject = p_number))),
           (SELECT count(*) FROM login_attempts la
             WHERE la.client = p_client AND la.outcome = 'wrong_pin'
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

-- A RADIUS login: lock the card (concurrent logins of one card, on any number of radiusd or portal
-- processes, go one at a time), read the snapshot after the lock, and when the card is usable at a known
-- place, not locked out, and below its tariff's simultaneous-use limit, open a pending session and record
-- the login as 'ok'. The returned ids are NULL when nothing was reserved. The commit does not wait for
-- the disk: a reservation lost in a database crash costs nothing (the NAS's Accounting-Start opens the
-- session all the same).
CREATE FUNCTION radius_login(p_number text, p_nas_ip inet, p_client text, p_at timestamptz, p_window integer,
                             p_pending_ttl integer, p_max_failures integer, p_token text, p_username text,
                             p_calling_station_id text)
RETURNS TABLE (facts login_facts, reserved_session_id bigint, attempt_id bigint) LANGUAGE plpgsql AS $$
DECLARE
    snap login_facts;
    tariff integer;
    session_limit integer;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    PERFORM 1 FROM cards WHERE cards.number = p_number FOR UPDATE;
    snap := login_snapshot(p_number, p_nas_ip, NULL, p_client, p_at, p_window, p_pending_ttl);
    facts := snap;
    IF snap.card_id IS NULL OR snap.hotspot_id IS NULL OR snap.blocked OR snap.status NOT IN ('new', 'active')
       OR snap.card_failures >= p_max_failures OR snap.client_failures >= p_max_failures
       OR snap.batch_hotspot_id <> snap.hotspot_id THEN
        RETURN NEXT;
        RETURN;
    END IF;
    tariff := coalesce(snap.batch_tariff_id, snap.hotspot_tariff_id);
    SELECT t.simultaneous_use INTO session_limit FROM tariffs t WHERE t.id = tariff;
    IF snap.live_sessions < session_limit THEN
        INSERT INTO sessions (status, account_id, card_id, hotspot_id, tariff_id, nas_id, source, auth_token,
                              username, calling_station_id, started_at, last_seen_at)
        VALUES ('pending', snap.account_id, snap.card_id, snap.hotspot_id, tariff, snap.nas_id, 'radius',
                p_token, p_username, p_calling_station_id, p_at, p_at)
        RETURNING id INTO reserved_session_id;
        INSERT INTO login_attempts (at, card_number, client, hotspot_id, source, outcome)
        VALUES (p_at, p_number, p_client, snap.hotspot_id, 'radius', 'ok')
        RETURNING id INTO attempt_id;
    END IF;
    RETURN NEXT;
END $$;

-- Undo a reservation the billing rules refused after all (wrong PIN, expired, nothing left to spend...):
-- the pending session goes, and the login is recorded with the refusal instead of 'ok'.
CREATE FUNCTION cancel_radius_login(p_session_id bigint, p_attempt_id bigint, p_outcome text)
RETURNS void LANGUAGE sql AS $$
    DELETE FROM sessions WHERE id = p_session_id AND status = 'pending';
    UPDATE login_attempts SET outcome = p_outcome WHERE id = p_attempt_id;
$$;

DROP FUNCTION reserve_radius_session(bigint, integer, timestamptz, integer, bigint, integer, integer, integer,
                                     text, text, text, text, text);
