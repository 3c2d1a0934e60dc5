-- 027: an accepted RADIUS login writes its pending session and nothing else. Forward-only.
--
-- radius_login (024) recorded every login it reserved a slot for as an 'ok' row of login_attempts, and
-- radius_login_refused rewrote that row when Python refused the login after all. Nothing reads an 'ok'
-- row: the lockout counts wrong PINs and unknown card numbers only (login_snapshot, db/lockouts.py), and
-- the accepted login is its session (card, client, NAS, time: sessions.started_at, calling_station_id).
-- The row cost every login an insert, with its foreign key check, in the transaction that holds the card
-- lock. Now login_attempts holds refusals only (from RADIUS; the portal and the desk still record theirs
-- as before), and a refused login that had a slot gives it back and is recorded in the one call
-- radiusd's Post-Auth-Type REJECT makes anyway.

DROP FUNCTION radius_login(text, inet, text, timestamptz, integer, integer, text, text, text);  -- merged below
DROP FUNCTION cancel_radius_login(bigint, bigint, text);

-- The login's database call, made by radiusd's hotspot_sql (010): lock the card (concurrent logins of one
-- card, on any number of radiusd or portal processes, go one at a time), read the snapshot after the lock,
-- and when the card is known at a known place and below its tariff's simultaneous-use limit, open a
-- pending session. One function, not radius_login wrapped in radius_login_json (024): the wrapper's call
-- and its json_each/json_agg over the snapshot cost a tenth of a millisecond a login.
--
-- The arguments, hex-encoded JSON: {"number", "nas_ip", "client", "at", "window", "pending_ttl", "token",
-- "username", "calling_station_id"} (client and calling_station_id may be null). The result, a JSON
-- array: login_facts' fields in its order (the PIN secret in hex; tests/db/test_login_facts.py checks the
-- order against the type and LoginSnapshot by name), the reserved session's id (NULL: no slot taken), and
-- the call's number, time and token.
--
-- The commit does not wait for the disk (set_config(..., true) lasts to the end of the transaction, which
-- rlm_sql's autocommit ends right after the call; a SET clause on the function would be undone before the
-- commit): a reservation lost in a database crash only frees a slot, and the NAS's Accounting-Start opens
-- the session all the same.
CREATE OR REPLACE FUNCTION radius_login_json(p_arguments text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    a jsonb := convert_from(decode(p_arguments, 'hex'), 'UTF8')::jsonb;
    p_number text := a->>'number';
    p_at timestamptz := (a->>'at')::timestamptz;
    f login_facts;
    tariff integer;
    session_limit integer;
    reserved_session_id bigint;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    PERFORM 1 FROM cards WHERE cards.number = p_number FOR UPDATE;
    f := login_snapshot(p_number, (a->>'nas_ip')::inet, NULL, a->>'client', p_at, (a->>'window')::integer,
                        (a->>'pending_ttl')::integer);
    IF f.card_id IS NOT NULL AND f.hotspot_id IS NOT NULL THEN  -- else nothing to reserve a slot of, or at
        tariff := coalesce(f.batch_tariff_id, f.hotspot_tariff_id);
        SELECT t.simultaneous_use INTO session_limit FROM tariffs t WHERE t.id = tariff;
        IF f.live_sessions < session_limit THEN
            INSERT INTO sessions (status, account_id, card_id, hotspot_id, tariff_id, nas_id, source, auth_token,
                                  username, calling_station_id, started_at, last_seen_at)
            VALUES ('pending', f.account_id, f.card_id, f.hotspot_id, tariff, f.nas_id, 'radius', a->>'token',
                    a->>'username', a->>'calling_station_id', p_at, p_at)
            RETURNING id INTO reserved_session_id;
        END IF;
    END IF;
    RETURN json_build_array(
        f.card_id, f.number, f.status, f.blocked, f.account_id, f.activated_at, encode(f.pin_secret, 'hex'),
        f.pin_key_id, f.face_value, f.batch_tariff_id, f.batch_hotspot_id, f.valid_from, f.use_before,
        f.validity_seconds, f.expires_at, f.balance, f.live_sessions, f.nas_id, f.nas_vendor, f.hotspot_id,
        f.hotspot_timezone, f.hotspot_tariff_id, f.hotspot_mode, f.traffic_meter, f.interim_interval,
        f.idle_timeout, f.max_session_seconds, f.card_failures, f.client_failures,
        reserved_session_id, a->'number', a->'at', a->'token')::text;
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
