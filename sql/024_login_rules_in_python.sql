-- 024: a RADIUS login's refusals are decided once, in Python. Forward-only.
--
-- radius_login (006) refused to take a slot for a card that was unknown, blocked, used up, locked out or
-- sold for another hotspot: the same five rules rlm_hotspot.services.access decides over the snapshot. Two
-- copies of one rule drift, and then a guest hears the wrong reason ("in use on another device" for a card
-- Python accepted but SQL would not reserve). Now the database decides only what must be decided under the
-- card lock: whether the card has a simultaneous-use slot left. Every other refusal is Python's (for RADIUS
-- and the portal alike); a reservation Python refuses is given back by radius_login_refused (010), in the
-- Post-Auth-Type REJECT call radiusd makes for every refusal anyway, so no round trip is added.
--
-- The JSON array radius_login_json returns is built from login_facts itself, in its field order, so the
-- type and the array cannot disagree; rlm_hotspot.db.sessions.LoginSnapshot lists the same fields in the
-- same order (tests/db/test_login_facts.py checks all three by name).

DROP FUNCTION radius_login(text, inet, text, timestamptz, integer, integer, integer, text, text, text);

-- Lock the card (concurrent logins of one card, on any number of radiusd or portal processes, go one at a
-- time), read the snapshot after the lock, and when the card is known at a known place and below its
-- tariff's simultaneous-use limit, open a pending session and record the login as 'ok'. The returned ids
-- are NULL when nothing was reserved. The commit does not wait for the disk: a reservation lost in a
-- database crash costs nothing (the NAS's Accounting-Start opens the session all the same).
CREATE FUNCTION radius_login(p_number text, p_nas_ip inet, p_client text, p_at timestamptz, p_window integer,
                             p_pending_ttl integer, p_token text, p_username text, p_calling_station_id text)
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
    IF snap.card_id IS NULL OR snap.hotspot_id IS NULL THEN  -- nothing to reserve a slot of, or at
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

-- The arguments: {"number", "nas_ip", "client", "at", "window", "pending_ttl", "token", "username",
-- "calling_station_id"} (client and calling_station_id may be null). The result: login_facts' fields in
-- its order (the PIN secret in hex), the reservation, and the call's number, time and token (010).
CREATE OR REPLACE FUNCTION radius_login_json(p_arguments text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    a jsonb := convert_from(decode(p_arguments, 'hex'), 'UTF8')::jsonb;
    r record;
    f login_facts;
    facts json;
BEGIN
    SELECT * INTO r
    FROM radius_login(a->>'number', (a->>'nas_ip')::inet, a->>'client', (a->>'at')::timestamptz,
                      (a->>'window')::integer, (a->>'pending_ttl')::integer, a->>'token', a->>'username',
                      a->>'calling_station_id');
    f := r.facts;
    SELECT json_agg(CASE WHEN e.name = 'pin_secret' THEN to_json(encode(f.pin_secret, 'hex')) ELSE e.value END
                    ORDER BY e.position)
    INTO facts
    FROM json_each(row_to_json(f)) WITH ORDINALITY AS e(name, value, position);
    RETURN (facts::jsonb || jsonb_build_array(r.reserved_session_id, r.attempt_id, a->'number', a->'at',
                                              a->'token'))::text;
END $$;
