-- 028: a RADIUS login crosses into the python3 module once. Forward-only.
--
-- Until 027 the virtual server called the module twice around the login's database call: the first call
-- only checked the request, normalised the card number and packed the arguments as hex JSON. Every call
-- of rlm_python3 hands the module the request's attribute lists and runs under the lock radiusd holds
-- around the module, so that first call cost radiusd CPU and serialized time for little work. Now the
-- virtual server builds the call from radiusd's own xlats (the attributes' octets as hex: values reach
-- SQL only as hex digits and radiusd-printed IP addresses, never as SQL) and radius_login below reads the
-- card number, the client and the rest from them; the one module call decides (the check digit's typo
-- verdict included: a typo costs a query now, and still never counts towards the lockout).

DROP FUNCTION radius_login_json(text);  -- replaced by radius_login below

-- A text attribute's octets (hex) as the module reads them: UTF-8, each byte that is not (and NUL) as
-- "\xNN" — rlm_hotspot.radius.decode.readable (bytes.decode("utf-8", "backslashreplace")). Printable
-- ASCII, what NAS send, takes the short way.
CREATE FUNCTION radius_text(p_hex text) RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    raw bytea := decode(p_hex, 'hex');
    n integer := length(raw);
    out bytea := '';
    i integer := 0;
    b integer;
    width integer;
    low integer;
    high integer;
    j integer;
BEGIN
    IF p_hex ~ '^([2-6][0-9a-f]|7[0-9a-e])*$' THEN
        RETURN convert_from(raw, 'UTF8');
    END IF;
    WHILE i < n LOOP
        b := get_byte(raw, i);
        width := CASE WHEN b BETWEEN 1 AND 127 THEN 1 WHEN b BETWEEN 194 AND 223 THEN 2
                      WHEN b BETWEEN 224 AND 239 THEN 3 WHEN b BETWEEN 240 AND 244 THEN 4 ELSE 0 END;
        -- the second byte's range (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF)
        low := CASE b WHEN 224 THEN 160 WHEN 240 THEN 144 ELSE 128 END;
        high := CASE b WHEN 237 THEN 159 WHEN 244 THEN 143 ELSE 191 END;
        j := 1;
        WHILE j < width AND i + j < n LOOP
            EXIT WHEN get_byte(raw, i + j) NOT BETWEEN (CASE j WHEN 1 THEN low ELSE 128 END)
                                                   AND (CASE j WHEN 1 THEN high ELSE 191 END);
            j := j + 1;
        END LOOP;
        IF width > 0 AND j = width THEN
            out := out || substr(raw, i + 1, width);
            i := i + width;
        ELSE
            out := out || convert_to('\x' || lpad(to_hex(b), 2, '0'), 'UTF8');
            i := i + 1;
        END IF;
    END LOOP;
    RETURN convert_from(out, 'UTF8');
END $$;

-- The login's database call, made by radiusd's hotspot_sql (freeradius-config/sites-available/hotspot): lock
-- the card (concurrent logins of one card, on any number of radiusd or portal processes, go one at a
-- time), read the snapshot after the lock, and when the card is known at a known place and below its
-- tariff's simultaneous-use limit, open a pending session with a new Class token.
--
-- The arguments as the virtual server writes them: User-Name and Calling-Station-Id as hex octets ('' when
-- absent), NAS-IP-Address, NAS-IPv6-Address and Framed-IP-Address as radiusd prints them ('' when absent),
-- the lockout window and the pending sessions' time to live (the module's config block, from the settings
-- file), and the time (tests; radiusd: the database's clock). The card number is User-Name without spaces,
-- dashes and dots when that leaves 6-20 digits (rlm_hotspot.core.cardcode), else there is no card to look
-- up; the client is named as the module names it (client_identity, 014). Which refusal, if any, the module
-- decides, the check digit's included.
--
-- The result, a JSON array: login_facts' fields in its order (the PIN secret in hex;
-- tests/db/test_login_facts.py checks the order against the type and LoginSnapshot by name), the reserved
-- session's id (NULL: no slot taken), and the call's time and token.
--
-- The commit does not wait for the disk (as since 024; see 027).
CREATE FUNCTION radius_login(p_user_name text, p_nas_ip text, p_nas_ipv6 text, p_station text, p_framed_ip text,
                             p_window integer, p_pending_ttl integer, p_at timestamptz DEFAULT now())
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    typed text;  -- User-Name, when it is made only of what a card number may be typed with
    p_number text;
    station text := radius_text(nullif(p_station, ''));
    token text := translate(encode(substr(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()), 1, 18),
                                   'base64'), '+/', '-_');  -- 138 random bits, 24 characters like new_token()
    f login_facts;
    tariff integer;
    session_limit integer;
    reserved_session_id bigint;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    IF p_user_name ~ '^(3[0-9]|20|2d|2e)+$' THEN
        typed := convert_from(decode(p_user_name, 'hex'), 'UTF8');
        p_number := translate(typed, ' -.', '');
        IF length(p_number) NOT BETWEEN 6 AND 20 THEN
            p_number := NULL;
        END IF;
    END IF;
    PERFORM 1 FROM cards WHERE cards.number = p_number FOR UPDATE;
    f := login_snapshot(p_number, coalesce(nullif(p_nas_ip, ''), nullif(p_nas_ipv6, ''))::inet, NULL,
                        client_identity(station, nullif(p_framed_ip, '')), p_at, p_window, p_pending_ttl);
    IF f.card_id IS NOT NULL AND f.hotspot_id IS NOT NULL THEN  -- else nothing to reserve a slot of, or at
        tariff := coalesce(f.batch_tariff_id, f.hotspot_tariff_id);
        SELECT t.simultaneous_use INTO session_limit FROM tariffs t WHERE t.id = tariff;
        IF f.live_sessions < session_limit THEN
            INSERT INTO sessions (status, account_id, card_id, hotspot_id, tariff_id, nas_id, source, auth_token,
                                  username, calling_station_id, started_at, last_seen_at)
            VALUES ('pending', f.account_id, f.card_id, f.hotspot_id, tariff, f.nas_id, 'radius', token,
                    typed, station, p_at, p_at)
            RETURNING id INTO reserved_session_id;
        END IF;
    END IF;
    RETURN json_build_array(
        f.card_id, f.number, f.status, f.blocked, f.account_id, f.activated_at, encode(f.pin_secret, 'hex'),
        f.pin_key_id, f.face_value, f.batch_tariff_id, f.batch_hotspot_id, f.valid_from, f.use_before,
        f.validity_seconds, f.expires_at, f.balance, f.live_sessions, f.nas_id, f.nas_vendor, f.hotspot_id,
        f.hotspot_timezone, f.hotspot_tariff_id, f.hotspot_mode, f.traffic_meter, f.interim_interval,
        f.idle_timeout, f.max_session_seconds, f.card_failures, f.client_failures,
        reserved_session_id, p_at, token)::text;
END $$;

-- A login that ends in an Access-Reject, recorded from radiusd's Post-Auth-Type REJECT (027): with
-- session_id (the database call reserved a slot) the pending session is given back first. Without an
-- outcome (a request the module found malformed after the database call had reserved a slot) nothing is
-- recorded: the attempt was no guess at a card.
CREATE OR REPLACE FUNCTION radius_login_refused(p_arguments text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    a jsonb := convert_from(decode(p_arguments, 'hex'), 'UTF8')::jsonb;
BEGIN
    IF a->>'session_id' IS NOT NULL THEN
        DELETE FROM sessions WHERE id = (a->>'session_id')::bigint AND status = 'pending';
    END IF;
    IF a->>'outcome' IS NOT NULL THEN
        INSERT INTO login_attempts (at, card_number, client, hotspot_id, source, outcome)
        VALUES ((a->>'at')::timestamptz, a->>'number', a->>'client', (a->>'hotspot_id')::integer, 'radius',
                a->>'outcome');
    END IF;
    RETURN coalesce(a->>'outcome', 'given back');
END $$;
