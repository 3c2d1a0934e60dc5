-- 028: an accepted RADIUS login writes its pending session and nothing else. Forward-only.
--
-- radius_login (024) recorded every login it reserved a slot for as an 'ok' row of login_attempts, and
-- radius_login_refused rewrote that row when Python refused the login after all. Nothing reads an 'ok'
-- row: the lockout counts wrong PINs and unknown card numbers only (login_snapshot, db/lockouts.py), and
-- the accepted login is its session (card, client, NAS, time: sessions.started_at, calling_station_id).
-- The row cost every login an insert, with its foreign key check, in the transaction that holds the card
-- lock. Now login_attempts holds refusals only (from RADIUS; the portal and the desk still record theirs
-- as before), and a refused login that had a slot gives it back and is recorded in the one call
-- radiusd's Post-Auth-Type REJECT makes anyway.

DROP FUNCTION radius_login(text, inet, text, timestamptz, integer, integer, text, text, text);
DROP FUNCTION cancel_radius_login(bigint, bigint, text);

-- Lock the card (concurrent logins of one card, on any number of radiusd or portal processes, go one at a
-- time), read the snapshot after the lock, and when the card is known at a known place and below its
-- tariff's simultaneous-use limit, open a pending session. reserved_session_id is NULL when nothing was
-- reserved. The commit does not wait for the disk (set_config(..., true) lasts to the end of the
-- transaction, which rlm_sql's autocommit ends right after the call; a SET clause on the function would be
-- undone before the commit): a reservation lost in a database crash only frees a slot, and the NAS's
-- Accounting-Start opens the session all the same.
CREATE FUNCTION radius_login(p_number text, p_nas_ip inet, p_client text, p_at timestamptz, p_window integer,
                             p_pending_ttl integer, p_token text, p_username text, p_calling_station_id text)
RETURNS TABLE (facts login_facts, reserved_session_id bigint) LANGUAGE plpgsql AS $$
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
    END IF;
    RETURN NEXT;
END $$;

-- The arguments: {"number", "nas_ip", "client", "at", "window", "pending_ttl", "token", "username",
-- "calling_station_id"} (client and calling_station_id may be null). The result: login_facts' fields in
-- its order (the PIN secret in hex), the reserved session's id, and the call's number, time and token.
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
    RETURN (facts::jsonb || jsonb_build_array(r.reserved_session_id, a->'number', a->'at', a->'token'))::text;
END $$;

-- A login that ends in an Access-Reject, recorded from radiusd's Post-Auth-Type REJECT: with session_id
-- (step 2 reserved a slot) the pending session is given back first. The arguments, hex-encoded JSON:
-- {"outcome", "number", "client", "hotspot_id", "at"} and, for a reserved login, "session_id".
CREATE OR REPLACE FUNCTION radius_login_refused(p_arguments text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    a jsonb := convert_from(decode(p_arguments, 'hex'), 'UTF8')::jsonb;
BEGIN
    IF a->>'session_id' IS NOT NULL THEN
        DELETE FROM sessions WHERE id = (a->>'session_id')::bigint AND status = 'pending';
    END IF;
    INSERT INTO login_attempts (at, card_number, client, hotspot_id, source, outcome)
    VALUES ((a->>'at')::timestamptz, a->>'number', a->>'client', (a->>'hotspot_id')::integer, 'radius',
            a->>'outcome');
    RETURN a->>'outcome';
END $$;
