-- 005: the RADIUS hot paths in as few round trips as the rules allow. Forward-only.

-- The one definition of a live session (it holds a simultaneous-use slot): open and heard from within
-- 2 x interim interval + grace, or pending (Accept sent, no Start yet) for at most the pending TTL.
-- Anything older is stale: it no longer locks its owner out, and the worker closes it.
CREATE FUNCTION session_is_live(status text, last_seen_at timestamptz, interim_interval integer,
                                stale_grace integer, at timestamptz, pending_ttl integer)
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT (status = 'open' AND last_seen_at > at - make_interval(secs => 2 * interim_interval + stale_grace))
        OR (status = 'pending' AND last_seen_at > at - make_interval(secs => pending_ttl))
$$;

-- Take a simultaneous-use slot for an accepted RADIUS login: lock the card (so concurrent logins of one
-- card, on any number of radiusd or portal processes, go one at a time), count its live sessions with a
-- snapshot taken after the lock, and open a pending session if there is room (the login is recorded in
-- login_attempts as 'ok', like every other outcome). NULL: no room.
-- One call, one round trip: radiusd runs the hooks one at a time, so every round trip counts. Its commit
-- does not wait for the disk: a reservation lost in a database crash costs nothing (the NAS's
-- Accounting-Start opens the session all the same).
CREATE FUNCTION reserve_radius_session(
    p_card_id bigint, p_limit integer, p_at timestamptz, p_pending_ttl integer, p_account_id bigint,
    p_hotspot_id integer, p_tariff_id integer, p_nas_id integer, p_token text, p_username text,
    p_calling_station_id text, p_card_number text, p_client text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    live integer;
    reserved bigint;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    PERFORM 1 FROM cards WHERE id = p_card_id FOR UPDATE;
    SELECT count(*) INTO live
    FROM sessions s JOIN hotspots h ON h.id = s.hotspot_id
    WHERE s.card_id = p_card_id AND s.status <> 'closed'
      AND session_is_live(s.status, s.last_seen_at, h.interim_interval, h.stale_grace, p_at, p_pending_ttl);
    IF live >= p_limit THEN
        RETURN NULL;
    END IF;
    INSERT INTO sessions (status, account_id, card_id, hotspot_id, tariff_id, nas_id, source, auth_token,
                          username, calling_station_id, started_at, last_seen_at)
    VALUES ('pending', p_account_id, p_card_id, p_hotspot_id, p_tariff_id, p_nas_id, 'radius', p_token,
            p_username, p_calling_station_id, p_at, p_at)
    RETURNING id INTO reserved;
    INSERT INTO login_attempts (at, card_number, client, hotspot_id, source, outcome)
    VALUES (p_at, p_card_number, p_client, p_hotspot_id, 'radius', 'ok');
    RETURN reserved;
END $$;

-- Sessions are updated far more often than inserted (every interim, heartbeat and NetFlow batch): room
-- left in each page lets an update that touches no indexed column stay in place (a HOT update) instead
-- of adding an entry to every index of the table.
ALTER TABLE sessions SET (fillfactor = 80);
