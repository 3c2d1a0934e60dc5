-- 010: the RADIUS login's database call in a form rlm_sql can make. Forward-only.
--
-- radiusd runs the python3 module's hooks one at a time (one lock per instance), so a round trip made
-- from Python is waited for by every other request. The virtual server therefore makes the call itself,
-- through an rlm_sql instance (`%{hotspot_sql:SELECT ...}`), from radiusd's thread pool and over a pool of
-- connections, and Python only decides on the result. An rlm_sql xlat passes text in (escaped) and gets
-- the first column of the first row back as text, so:
--   * the arguments arrive as one value, hex-encoded JSON made by the module: hex digits pass rlm_sql's
--     escaping unchanged, so whatever a NAS sent (User-Name, Calling-Station-Id) reaches the database
--     exactly and never as SQL;
--   * the result is one JSON array: the login snapshot's fields in login_facts order (the PIN secret in
--     hex), the reservation, and the call's number, time and token (the module reads the result, not
--     its own arguments, which may be longer than it can read back). It must hold no backslash
--     (radiusd unescapes the text it stores in an attribute: every value here is a number, a
--     timestamp, hex or a checked identifier) and stay under 1,024 characters (rlm_python3 hands a hook
--     at most 1,023 of an attribute's value): an array of values, ~600 at most, not an object.

-- The arguments: {"number", "nas_ip", "client", "at", "window", "pending_ttl", "max_failures", "token",
-- "username", "calling_station_id"} (client and calling_station_id may be null).
CREATE FUNCTION radius_login_json(p_arguments text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    a jsonb := convert_from(decode(p_arguments, 'hex'), 'UTF8')::jsonb;
    r record;
    f login_facts;
BEGIN
    SELECT * INTO r
    FROM radius_login(a->>'number', (a->>'nas_ip')::inet, a->>'client', (a->>'at')::timestamptz,
                      (a->>'window')::integer, (a->>'pending_ttl')::integer, (a->>'max_failures')::integer,
                      a->>'token', a->>'username', a->>'calling_station_id');
    f := r.facts;
    RETURN json_build_array(
        f.card_id, f.number, f.status, f.blocked, f.account_id, f.activated_at, encode(f.pin_secret, 'hex'),
        f.pin_key_id, f.face_value, f.batch_tariff_id, f.batch_hotspot_id, f.valid_from, f.use_before,
        f.validity_seconds, f.expires_at, f.balance, f.live_sessions, f.nas_id, f.nas_vendor, f.hotspot_id,
        f.hotspot_timezone, f.hotspot_tariff_id, f.hotspot_mode, f.traffic_meter, f.interim_interval,
        f.idle_timeout, f.max_session_seconds, f.card_failures, f.client_failures,
        r.reserved_session_id, r.attempt_id, a->'number', a->'at', a->'token')::text;
END $$;

-- A login that ends in an Access-Reject, recorded from radiusd's Post-Auth-Type REJECT: a reserved one
-- (session_id and attempt_id set) gives its slot back and is recorded with the refusal instead of 'ok'
-- (cancel_radius_login, 006); one refused before any reservation is recorded as it is. The arguments,
-- hex-encoded JSON: {"outcome", "session_id", "attempt_id"} or {"outcome", "number", "client",
-- "hotspot_id", "at"}.
CREATE FUNCTION radius_login_refused(p_arguments text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    a jsonb := convert_from(decode(p_arguments, 'hex'), 'UTF8')::jsonb;
BEGIN
    IF a->>'session_id' IS NOT NULL THEN
        PERFORM cancel_radius_login((a->>'session_id')::bigint, (a->>'attempt_id')::bigint, a->>'outcome');
    ELSE
        INSERT INTO login_attempts (at, card_number, client, hotspot_id, source, outcome)
        VALUES ((a->>'at')::timestamptz, a->>'number', a->>'client', (a->>'hotspot_id')::integer, 'radius',
                a->>'outcome');
    END IF;
    RETURN a->>'outcome';
END $$;
